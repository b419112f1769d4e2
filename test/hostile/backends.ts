// The two stores the hostile-input suites run against: in-memory SQLite, and the SimpleDB store on
// the local SimpleDB endpoint started in this process (each app its own domain prefix).
import { openStore } from '../../storage/index.js';
import type { Store } from '../../storage/store.js';
import { startSimpleDbLocal, type SimpleDbLocal } from '../../storage/simpledb/local/index.js';
import { openSimpleDbStore, staticCredentials } from '../../storage/simpledb/index.js';

export type BackendName = 'sqlite' | 'simpledb';
export const BACKENDS: readonly BackendName[] = ['sqlite', 'simpledb'];

const KEY = { accessKeyId: 'AKIDHOSTILETEST', secretAccessKey: 'hostile/secret+key' };

export interface StoreFactory {
  open(): Promise<Store>;
  close(): Promise<void>;
}

let prefixes = 0;

/** A factory of fresh stores of one backend; close() stops the local endpoint when there is one. */
export async function storeFactory(backend: BackendName): Promise<StoreFactory> {
  if (backend === 'sqlite') {
    return { open: () => openStore({ backend: 'sqlite', path: ':memory:' }), close: async () => {} };
  }
  const local: SimpleDbLocal = await startSimpleDbLocal({ ...KEY });
  return {
    open: () =>
      openSimpleDbStore(
        { backend: 'simpledb', region: 'us-east-1', prefix: `h${prefixes++}`, shards: 2, endpoint: new URL(local.url), createDomains: true },
        // Reads go to the endpoint every time: a cached answer would hide what a select returns.
        { credentials: staticCredentials(KEY), cacheTtlMs: 0, maxAttempts: 3, sleep: async () => {} },
      ),
    close: () => local.close(),
  };
}
