// The store contract against the local SimpleDB-compatible endpoint, three ways: plain, with stale
// eventually-consistent reads, and with a share of requests answered 503.
import { describe } from 'vitest';
import { describeStoreContract } from '../store.contract.js';
import { startSimpleDbLocal, type Faults } from './local/index.js';
import { openSimpleDbStore, staticCredentials } from './index.js';

const KEY = { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local/secret+key' };

// Each test gets its own local endpoint: the endpoint enforces SimpleDB's 250-domain limit, and
// every store opens 5 domains, so one endpoint for the whole suite runs out at 50 tests.
// Properties run fewer cases against stale reads: every case of the model-based property polls the
// aggregate reads until the stale window has passed.
function contract(name: string, faults: Partial<Faults>, eventuallyConsistent: boolean, propertyRuns?: number) {
  describeStoreContract(
    name,
    async (options) => {
      const local = await startSimpleDbLocal({ ...KEY, faults });
      try {
        const store = await openSimpleDbStore(
          { backend: 'simpledb', region: 'us-east-1', prefix: 't', shards: 3, endpoint: new URL(local.url), createDomains: true },
          { credentials: staticCredentials(KEY), cacheTtlMs: 5000, maxAttempts: 12, sleep: async () => {}, ...options },
        );
        return {
          store,
          cleanup: async () => {
            await store.close();
            await local.close();
          },
        };
      } catch (err) {
        await local.close();
        throw err;
      }
    },
    { eventuallyConsistent, ...(propertyRuns === undefined ? {} : { propertyRuns }) },
  );
}

describe('SimpleDB store (plain)', () => contract('simpledb', {}, false));
describe('SimpleDB store (stale reads)', () => contract('simpledb, stale reads', { staleReads: true, staleWindowMs: 300 }, true, 6));
describe('SimpleDB store (503 rate 0.2)', () => contract('simpledb, 20% 503', { failureRate: 0.2 }, false));
