// What to tell an operator when a TLS connection failed because the peer's certificate is not
// trusted: Node trusts its bundled public CAs only, so a server or Vault behind a private CA needs
// that CA added when the process starts (NODE_EXTRA_CA_CERTS, read by Node itself; no flag of ours).

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
export function untrustedCertificateHint(err: unknown): string | undefined {
  const code = codeOf(err);
  if (code === undefined || !UNTRUSTED.has(code)) return undefined;
  return `the peer's TLS certificate is not trusted (${code}); if it comes from a private CA, start with NODE_EXTRA_CA_CERTS=/path/to/ca.pem`;
}
