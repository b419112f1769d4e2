import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signParams, stringToSign } from '../sigv2.js';
import { authenticate, type AuthOptions } from './auth.js';
import { SdbError } from './errors.js';

const NOW = Date.parse('2026-01-02T03:04:05Z');
const credentials = { accessKeyId: 'AKIDAUTH', secretAccessKey: 'auth-secret' };
const opts: AuthOptions = { credentials, now: () => NOW, maxClockSkewMs: 15 * 60_000 };
const host = '127.0.0.1:9999';

function signed(extra: Record<string, string>): Record<string, string> {
  return signParams({ Action: 'ListDomains', Version: '2009-04-15', ...extra }, { ...credentials, method: 'POST', host, path: '/' });
}

function code(params: Record<string, string>, o: AuthOptions = opts): string | undefined {
  try {
    authenticate({ method: 'POST', host, path: '/', params }, o);
    return undefined;
  } catch (err) {
    return (err as SdbError).code;
  }
}

describe('authenticate', () => {
  it('accepts a SigV2 HmacSHA256 signature made with the configured key pair', () => {
    expect(code(signed({ Timestamp: new Date(NOW).toISOString() }))).toBeUndefined();
  });

  it('accepts HmacSHA1 signatures too', () => {
    const params: Record<string, string> = {
      Action: 'ListDomains', Version: '2009-04-15', Timestamp: new Date(NOW).toISOString(),
      AWSAccessKeyId: credentials.accessKeyId, SignatureVersion: '2', SignatureMethod: 'HmacSHA1',
    };
    params.Signature = createHmac('sha1', credentials.secretAccessKey).update(stringToSign('POST', host, '/', params)).digest('base64');
    expect(code(params)).toBeUndefined();
  });

  it('rejects a tampered parameter with SignatureDoesNotMatch', () => {
    const params = signed({ Timestamp: new Date(NOW).toISOString() });
    expect(code({ ...params, Action: 'DeleteDomain' })).toBe('SignatureDoesNotMatch');
  });

  it('rejects other signature versions and methods', () => {
    expect(code({ ...signed({ Timestamp: new Date(NOW).toISOString() }), SignatureVersion: '1' })).toBe('InvalidParameterValue');
    expect(code({ ...signed({ Timestamp: new Date(NOW).toISOString() }), SignatureMethod: 'HmacMD5' })).toBe('InvalidParameterValue');
  });

  it('needs exactly one of Timestamp and Expires, in time', () => {
    expect(code(signed({}))).toBe('MissingParameter');
    expect(code(signed({ Timestamp: new Date(NOW).toISOString(), Expires: new Date(NOW + 60_000).toISOString() }))).toBe('InvalidParameterCombination');
    expect(code(signed({ Expires: new Date(NOW + 60_000).toISOString() }))).toBeUndefined();
    expect(code(signed({ Expires: new Date(NOW - 1).toISOString() }))).toBe('RequestExpired');
    expect(code(signed({ Timestamp: new Date(NOW + 16 * 60_000).toISOString() }))).toBe('RequestExpired');
    expect(code(signed({ Timestamp: 'yesterday' }))).toBe('InvalidParameterValue');
  });

  it('skips the clock check when maxClockSkewMs is null (fixed-clock tests)', () => {
    expect(code(signed({ Timestamp: '2011-10-03T15:19:30Z' }), { ...opts, maxClockSkewMs: null })).toBeUndefined();
  });
});
