// What to tell an operator when a TLS connection failed: the peer's certificate is not trusted (Node
// trusts its bundled public CAs only, so a server or Vault behind a private CA needs that CA added when
// the process starts: NODE_EXTRA_CA_CERTS, read by Node itself, no flag of ours), or it does not speak TLS.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Node's codes for a certificate chain it cannot verify (not an expired or misnamed certificate). */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** The error's code, or its cause's (undici and request libraries wrap the TLS error). */
function codeOf(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A hint for an untrusted certificate, or undefined for any other failure. */
function untrustedCertificateHint(err: unknown): string | undefined {
  const code = codeOf(err);
  if (code === undefined || !UNTRUSTED.has(code)) return undefined;
  const hint = `the peer's TLS certificate is not trusted (${code}); if it comes from a private CA, start with NODE_EXTRA_CA_CERTS=/path/to/ca.pem`;
  // Node's code when no certificate it has issued the leaf: an unknown CA, or a known one whose
  // intermediate the server does not send (a web server or balancer given the leaf alone), which
  // the advice above cannot fix.
  if (code !== 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') return hint;
  return `${hint}; if that file holds the CA already, the server sends its certificate without its intermediate CA certificate: give it (or its load balancer) the full chain`;
}

/**
 * Node's codes for a peer that answered a TLS handshake with something else: an https:// URL naming
 * a plain HTTP port (the server's own 5001; TLS ends at its load balancer). OpenSSL's message for
 * it is a line of internal names and a source path.
 */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_HTTP_REQUEST']);

/** A hint for a peer that does not speak TLS, or undefined for any other failure. */
function notTlsHint(err: unknown): string | undefined {
  const code = codeOf(err);
  // node:https (Vault's client) reports it as a bare EPROTO; only OpenSSL's words tell which one.
  const eproto = code === 'EPROTO' && /wrong version number|packet length too long|http request/.test(String((err as { message?: unknown } | null)?.message));
  if (code === undefined || !(NOT_TLS.has(code) || eproto)) return undefined;
  return `the peer does not speak TLS (${code}): does this https:// URL name a plain HTTP port?`;
}

/**
 * What to tell an operator about a failed TLS connection: a certificate not trusted, or a peer that
 * does not speak TLS at all; undefined for any other failure (the caller's own words then).
 */
export function tlsFailureHint(err: unknown): string | undefined {
  return untrustedCertificateHint(err) ?? notTlsHint(err);
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * Why the NODE_EXTRA_CA_CERTS file adds no CA, or undefined when it holds a root certificate.
 * Node warns by itself only when it cannot open the file; an empty file, or one holding no PEM
 * certificate (a key, DER, a wrong path to some other file), it ignores without a word, and every
 * TLS connection to the private CA's server or Vault then failed with the advice to set the
 * variable that was already set.
 */
export function extraCaCertsProblem(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch (err) {
    return `NODE_EXTRA_CA_CERTS=${path} cannot be read (${(err as { code?: string }).code ?? (err as Error).message}); Node ignores it, so a server or Vault behind a private CA will not be trusted`;
  }
  const certificates = (text.match(PEM_CERTIFICATE) ?? []).flatMap((pem) => {
    try {
      return [new X509Certificate(pem)];
    } catch {
      return [];
    }
  });
  // OpenSSL builds a chain up to a certificate that issued itself; one another CA issued (the
  // server's own certificate, an intermediate alone) anchors nothing, and the server stays untrusted.
  if (certificates.length > 0 && !certificates.some((c) => c.checkIssued(c))) {
    return `NODE_EXTRA_CA_CERTS=${path} holds no root certificate, only certificates another CA issued (a server's own certificate, or an intermediate without its root); Node verifies a chain up to a certificate that issued itself: give it the private CA's root certificate`;
  }
  if (certificates.length > 0) return undefined;
  const what = text.trim() === '' ? 'is empty' : 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  return `NODE_EXTRA_CA_CERTS=${path} ${what}; Node ignores it, so a server or Vault behind a private CA will not be trusted`;
}
