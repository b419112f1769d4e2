import { describe, expect, it } from 'vitest';
import { canonicalQuery, rfc3986Encode, signParams, signV2, stringToSign } from './sigv2.js';

const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

describe('SigV2', () => {
  it('reproduces the signature of AWS published example', () => {
    const toSign =
      'GET\nelasticmapreduce.amazonaws.com\n/\nAWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeJobFlows&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30&Version=2009-03-31';
    expect(signV2(secret, toSign)).toBe('i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf/Mj6vPxyYIs=');
  });

  it('builds the same string to sign from the example parameters', () => {
    const params = {
      Version: '2009-03-31',
      Timestamp: '2011-10-03T15:19:30',
      SignatureVersion: '2',
      SignatureMethod: 'HmacSHA256',
      Action: 'DescribeJobFlows',
      AWSAccessKeyId: 'AKIAIOSFODNN7EXAMPLE',
    };
    const s = stringToSign('GET', 'ElasticMapReduce.amazonaws.com', '/', params);
    expect(signV2(secret, s)).toBe('i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf/Mj6vPxyYIs=');
  });

  it('signParams adds the auth parameters and the example signature', () => {
    const signed = signParams(
      { Action: 'DescribeJobFlows', Version: '2009-03-31', Timestamp: '2011-10-03T15:19:30' },
      { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: secret, method: 'GET', host: 'elasticmapreduce.amazonaws.com', path: '/' },
    );
    expect(signed).toMatchObject({ AWSAccessKeyId: 'AKIAIOSFODNN7EXAMPLE', SignatureVersion: '2', SignatureMethod: 'HmacSHA256' });
    expect(signed.Signature).toBe('i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf/Mj6vPxyYIs=');
  });

  it('encodes by RFC 3986: unreserved kept, space as %20, reserved and UTF-8 bytes upper-case %XX', () => {
    expect(rfc3986Encode("a-z_A.Z~09 !'()*+/=&é`")).toBe('a-z_A.Z~09%20%21%27%28%29%2A%2B%2F%3D%26%C3%A9%60');
  });

  it('sorts parameter names by byte order (upper case before lower case) and ignores Signature', () => {
    expect(canonicalQuery({ b: '1', a: '2', B: '3', 'Attribute.10.Name': 'x', 'Attribute.2.Name': 'y', Signature: 'zz' })).toBe(
      'Attribute.10.Name=x&Attribute.2.Name=y&B=3&a=2&b=1',
    );
  });

  it('keeps the port in the host', () => {
    expect(stringToSign('post', 'LOCALHOST:8443', '/', { A: '1' })).toBe('POST\nlocalhost:8443\n/\nA=1');
  });
});
