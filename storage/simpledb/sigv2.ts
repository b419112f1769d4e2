// AWS Signature Version 2 (HmacSHA256), the only scheme SimpleDB accepts. Shared by the client
// (which signs) and the local endpoint (which verifies), so both agree byte for byte.
// Reference: SimpleDB Developer Guide, "HMAC-SHA Signature" (HMACAuth).
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_VERSION = '2';
export const SIGNATURE_METHOD = 'HmacSHA256';

/**
 * RFC 3986 percent-encoding as SigV2 requires: unreserved characters (A-Z a-z 0-9 - _ . ~) are
 * kept, every other UTF-8 byte becomes %XX with upper-case hex (so a space is %20, never '+').
 */
export function rfc3986Encode(value: string): string {
  // encodeURIComponent leaves ! ' ( ) * unencoded; SigV2 wants them encoded.
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** Parameters sorted by the byte order of their names, encoded, joined with '&' (no Signature). */
export function canonicalQuery(params: Record<string, string>): string {
  const names = Object.keys(params).filter((n) => n !== 'Signature');
  names.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  return names.map((n) => `${rfc3986Encode(n)}=${rfc3986Encode(params[n])}`).join('&');
}

/**
 * The string to sign: METHOD \n host \n path \n canonical query.
 * `host` is the Host header as sent, lower-cased, with `:port` when the port is not the scheme's default.
 */
export function stringToSign(method: string, host: string, path: string, params: Record<string, string>): string {
  return `${method.toUpperCase()}\n${host.toLowerCase()}\n${path || '/'}\n${canonicalQuery(params)}`;
}

/** Base64 HmacSHA256 of the string to sign under the secret key. */
export function signV2(secretKey: string, toSign: string): string {
  return createHmac('sha256', secretKey).update(toSign, 'utf8').digest('base64');
}

export interface SignV2Options {
  accessKeyId: string;
  secretAccessKey: string;
  method: string;
  host: string;
  path: string;
}

/**
 * Returns a copy of `params` with AWSAccessKeyId, SignatureVersion, SignatureMethod and Signature
 * added. The caller supplies Action, Version and Timestamp (or Expires).
 */
export function signParams(params: Record<string, string>, opts: SignV2Options): Record<string, string> {
  const signed: Record<string, string> = {
    ...params,
    AWSAccessKeyId: opts.accessKeyId,
    SignatureVersion: SIGNATURE_VERSION,
    SignatureMethod: SIGNATURE_METHOD,
  };
  delete signed.Signature;
  signed.Signature = signV2(opts.secretAccessKey, stringToSign(opts.method, opts.host, opts.path, signed));
  return signed;
}

/** Constant-time comparison of two base64 signatures. */
export function signaturesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
