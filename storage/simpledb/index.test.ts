import { describe, expect, it } from 'vitest';
import { simpleDbCredentialSource, simpleDbCredentials } from './index.js';

describe('simpleDbCredentials: which keys SimpleDB requests are signed with', () => {
  it('takes explicit keys from config first', async () => {
    const provider = await simpleDbCredentials({ awsAccessKeyId: 'AKIDCONFIG', awsSecretAccessKey: 'cfg', vault: () => ({ accessKeyId: 'AKIDVAULT', secretAccessKey: 'v' }) });
    expect(await provider()).toEqual({ accessKeyId: 'AKIDCONFIG', secretAccessKey: 'cfg' });
  });

  it("else Vault's current keys, read again on every request so rotation applies at once", async () => {
    let current = { accessKeyId: 'AKIDVAULT1', secretAccessKey: 'v1' };
    const provider = await simpleDbCredentials({ vault: () => current });
    expect(await provider()).toEqual(current);
    current = { accessKeyId: 'AKIDVAULT2', secretAccessKey: 'v2' };
    expect(await provider()).toEqual({ accessKeyId: 'AKIDVAULT2', secretAccessKey: 'v2' });
  });

  it('ignores a half-given config pair and falls back to the next source', async () => {
    const provider = await simpleDbCredentials({ awsAccessKeyId: 'AKIDCONFIG', vault: () => ({ accessKeyId: 'AKIDVAULT', secretAccessKey: 'v' }) });
    expect((await provider()).accessKeyId).toBe('AKIDVAULT');
  });

  it('names the source it chose, as the server logs it at start', () => {
    const vault = () => ({ accessKeyId: 'AKIDVAULT', secretAccessKey: 'v' });
    expect(simpleDbCredentialSource({ awsAccessKeyId: 'A', awsSecretAccessKey: 's', vault })).toBe('flags');
    expect(simpleDbCredentialSource({ awsAccessKeyId: 'A', vault })).toBe('vault');
    expect(simpleDbCredentialSource({})).toBe('aws default chain');
  });
});
