// The store contract against the local SimpleDB-compatible endpoint, three ways: plain, with stale
// eventually-consistent reads, and with a share of requests answered 503.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { describeStoreContract } from '../store.contract.js';
import { batch, containerId, hostIdentity, transition, at } from '../store.fixtures.js';
import { startSimpleDbLocal, type Faults, type SimpleDbLocal } from './local/index.js';
import { openSimpleDbStore, staticCredentials } from './index.js';

const KEY = { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local/secret+key' };

function contract(name: string, faults: Partial<Faults>, eventuallyConsistent: boolean) {
  let local: SimpleDbLocal;
  let n = 0;
  beforeAll(async () => {
    local = await startSimpleDbLocal({ ...KEY, faults });
  });
  afterAll(async () => {
    await local.close();
  });
  describeStoreContract(
    name,
    async () => {
      const store = await openSimpleDbStore(
        { backend: 'simpledb', region: 'us-east-1', prefix: `t${n++}`, shards: 3, endpoint: new URL(local.url), createDomains: true },
        { credentials: staticCredentials(KEY), cacheTtlMs: 5000, maxAttempts: 12, sleep: async () => {} },
      );
      return { store, cleanup: () => store.close() };
    },
    { eventuallyConsistent },
  );
}

describe('SimpleDB store (plain)', () => contract('simpledb', {}, false));
describe('SimpleDB store (stale reads)', () => contract('simpledb, stale reads', { staleReads: true, staleWindowMs: 300 }, true));
describe('SimpleDB store (503 rate 0.2)', () => contract('simpledb, 20% 503', { failureRate: 0.2 }, false));
