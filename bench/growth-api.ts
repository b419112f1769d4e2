// Lookup growth through the API (issue 7): the stores of the store-level lookup curve, each behind
// the server as `ecs-id-mapper server` builds it (task cache off, so every request reaches the
// store), looked up with `GET /v2/lookup/<id>` by one keep-alive client in this process, one
// request at a time, in slices alternating between the stores as the store-level figures are.
// This is what an operator's lookup costs, HTTP, routing, validation and JSON included; the
// store-level figures are the store's own share of it.
import { Client } from 'undici';
import { serverRegistry } from '../api/main.js';
import type { Store } from '../storage/store.js';
import { benchServer, listenLoopback } from './bench-server.js';
import type { LookupKind } from './growth.bench.js';

export interface LookupTarget {
  id: string;
  task: string;
}

const KINDS: LookupKind[] = ['full_id', 'prefix', 'task'];

function pathOf(kind: LookupKind, t: LookupTarget): string {
  if (kind === 'full_id') return `/v2/lookup/${t.id}`;
  if (kind === 'prefix') return `/v2/lookup/${t.id.slice(0, 12)}`;
  return `/v2/lookup/${encodeURIComponent(t.task)}`;
}

/** One lookup; throws unless it answers 200 with the record (or, by task, the task's containers). */
async function lookUp(client: Client, kind: LookupKind, t: LookupTarget): Promise<void> {
  const res = await client.request({ method: 'GET', path: pathOf(kind, t) });
  const body = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${pathOf(kind, t)} answered ${res.statusCode}: ${body.slice(0, 200)}`);
  const containers = (JSON.parse(body) as { containers: Array<{ container_id: string }> }).containers;
  const found = kind === 'task' ? containers.length > 0 : containers.some((c) => c.container_id === t.id);
  if (!found) throw new Error(`GET ${pathOf(kind, t)} did not answer the seeded record`);
}

/**
 * `samples[i]` are looked up in `stores[i]`, each kind in turn, in 50 slices going round every
 * store; `warmUp` lookups of each kind per store first (JIT, connections), not timed. Returns
 * each store's times in ms, by kind.
 */
export async function timeApiLookups(stores: Store[], samples: LookupTarget[][], warmUp: number): Promise<Array<Record<LookupKind, number[]>>> {
  const apps = [];
  const clients: Client[] = [];
  try {
    for (const store of stores) {
      const app = await benchServer(store, serverRegistry(), 0);
      apps.push(app);
      clients.push(new Client(await listenLoopback(app), { pipelining: 1 }));
    }
    for (let i = 0; i < stores.length; i++) for (const k of KINDS) for (const t of samples[i].slice(0, warmUp)) await lookUp(clients[i], k, t);
    const slices = 50;
    const times: Array<Record<LookupKind, number[]>> = stores.map(() => ({ full_id: [], prefix: [], task: [] }));
    for (let s = 0; s < slices; s++) {
      for (const k of KINDS) {
        for (let i = 0; i < stores.length; i++) {
          const per = Math.ceil(samples[i].length / slices);
          for (const t of samples[i].slice(s * per, (s + 1) * per)) {
            const t0 = performance.now();
            await lookUp(clients[i], k, t);
            times[i][k].push(performance.now() - t0);
          }
        }
      }
    }
    return times;
  } finally {
    for (const c of clients) await c.close();
    for (const app of apps) await app.close();
  }
}
