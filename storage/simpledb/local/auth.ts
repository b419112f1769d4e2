// Verifies a Query API request the way SimpleDB does: common parameters present, the request not
// expired, and a Signature Version 2 signature made with the configured key pair over
// METHOD \n host (as sent, lower-cased, with port) \n path \n sorted, RFC 3986-encoded parameters.
import { createHmac } from 'node:crypto';
import { SdbError, missingParameter } from './errors.js';
import type { Params } from './params.js';
import { signaturesEqual, stringToSign } from '../sigv2.js';

export const API_VERSION = '2009-04-15';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface AuthRequest {
  method: string;
  host: string;
  path: string;
  params: Params;
}

export interface AuthOptions {
  credentials: Credentials;
  now: () => number;
  /** Accepted distance between Timestamp and the local clock; null disables the check. */
  maxClockSkewMs: number | null;
}

export function authenticate(req: AuthRequest, opts: AuthOptions): void {
  const p = req.params;
  if (!p.AWSAccessKeyId || !p.Signature) {
    throw new SdbError('AuthMissingFailure', 'AWS was not able to authenticate the request: access credentials are missing.');
  }
  if (p.AWSAccessKeyId !== opts.credentials.accessKeyId) {
    throw new SdbError('InvalidClientTokenId', 'The AWS Access Key Id you provided does not exist in our records.');
  }
  if (p.SignatureVersion !== '2') {
    if (p.SignatureVersion === undefined) throw missingParameter('SignatureVersion');
    throw new SdbError('InvalidParameterValue', `Value (${p.SignatureVersion}) for parameter SignatureVersion is invalid. Only version 2 is supported.`);
  }
  const method = p.SignatureMethod;
  if (method !== 'HmacSHA256' && method !== 'HmacSHA1') {
    if (method === undefined) throw missingParameter('SignatureMethod');
    throw new SdbError('InvalidParameterValue', `Value (${method}) for parameter SignatureMethod is invalid. Use HmacSHA256 or HmacSHA1.`);
  }
  checkTime(p, opts);
  const toSign = stringToSign(req.method, req.host, req.path, p);
  const expected = createHmac(method === 'HmacSHA256' ? 'sha256' : 'sha1', opts.credentials.secretAccessKey).update(toSign, 'utf8').digest('base64');
  if (!signaturesEqual(expected, p.Signature)) {
    throw new SdbError(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
}

function checkTime(p: Params, opts: AuthOptions): void {
  if (p.Timestamp !== undefined && p.Expires !== undefined) {
    throw new SdbError('InvalidParameterCombination', 'Timestamp and Expires cannot be used together.');
  }
  const name = p.Timestamp !== undefined ? 'Timestamp' : p.Expires !== undefined ? 'Expires' : undefined;
  if (!name) throw missingParameter('Timestamp');
  const at = Date.parse(p[name]);
  if (Number.isNaN(at)) throw new SdbError('InvalidParameterValue', `Value (${p[name]}) for parameter ${name} is invalid. Use ISO 8601.`);
  if (opts.maxClockSkewMs === null) return;
  const now = opts.now();
  if (name === 'Expires' ? at < now : Math.abs(now - at) > opts.maxClockSkewMs) {
    throw new SdbError('RequestExpired', `Request has expired. ${name} date is ${p[name]}.`);
  }
}

export function checkVersion(p: Params): void {
  if (p.Version === undefined) throw missingParameter('Version');
  if (p.Version !== API_VERSION) throw new SdbError('NoSuchVersion', `The requested version (${p.Version}) of service SimpleDB does not exist. Use ${API_VERSION}.`);
}
