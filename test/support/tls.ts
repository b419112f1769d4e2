// HTTPS servers on loopback with certificates Node does not trust unless told to (test/support/tls/):
// what a server or Vault behind a private CA looks like to a client.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const SELF_SIGNED_CERT = new URL('./tls/self-signed.cert.pem', import.meta.url);
const SELF_SIGNED_KEY = new URL('./tls/self-signed.key.pem', import.meta.url);

/** The root of a private CA (test/support/tls/README.md): what NODE_EXTRA_CA_CERTS names. */
export const PRIVATE_CA_CERT = new URL('./tls/private-ca.cert.pem', import.meta.url);
/** The private CA's intermediate, which issued the server's certificate. */
export const INTERMEDIATE_CERT = new URL('./tls/intermediate.cert.pem', import.meta.url);
/** The server's certificate, issued by the intermediate. */
export const PRIVATE_CA_LEAF_CERT = new URL('./tls/private-ca-leaf.cert.pem', import.meta.url);
const PRIVATE_CA_LEAF_KEY = new URL('./tls/private-ca-leaf.key.pem', import.meta.url);

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export function startSelfSignedHttps(handler: Handler): Promise<{ url: string; close(): Promise<void> }> {
  return startHttps(readFileSync(SELF_SIGNED_CERT, 'utf8'), readFileSync(SELF_SIGNED_KEY, 'utf8'), handler);
}

/**
 * An HTTPS server whose certificate a private CA's intermediate issued. `chain: false` sends the
 * certificate alone, as a server configured without its intermediate does.
 */
export function startPrivateCaHttps(options: { chain: boolean }, handler: Handler): Promise<{ url: string; close(): Promise<void> }> {
  const leaf = readFileSync(PRIVATE_CA_LEAF_CERT, 'utf8');
  const cert = options.chain ? leaf + readFileSync(INTERMEDIATE_CERT, 'utf8') : leaf;
  return startHttps(cert, readFileSync(PRIVATE_CA_LEAF_KEY, 'utf8'), handler);
}

async function startHttps(cert: string, key: string, handler: Handler): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer({ cert, key }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
