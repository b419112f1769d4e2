// An HTTPS server on loopback with a self-signed certificate (test/support/tls/), which Node does not
// trust unless told to: what a server or Vault behind a private CA looks like to a client.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const SELF_SIGNED_CERT = new URL('./tls/self-signed.cert.pem', import.meta.url);
const SELF_SIGNED_KEY = new URL('./tls/self-signed.key.pem', import.meta.url);

export async function startSelfSignedHttps(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer({ cert: readFileSync(SELF_SIGNED_CERT), key: readFileSync(SELF_SIGNED_KEY) }, handler);
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
