// docs/metrics.md lists every metric family the server and the reconciler expose. This test builds the
// tables from live /metrics and fails when the document drifts. To rewrite the tables:
//   UPDATE_METRICS_DOCS=1 npx vitest run test/metrics-docs.test.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batch, containerId, hostIdentity, transition } from '../storage/store.fixtures.js';
import { reconcilerMetricsExposition, simpleDbServerMetricsExposition, startServer } from './support/live-server.js';
import { families, referenceTable, withTable } from './support/metrics-reference.js';

const DOC = new URL('../docs/metrics.md', import.meta.url);
const PROCESS = /^ecs_id_mapper_(reconciler_)?(process_|nodejs_)/;

describe('docs/metrics.md', () => {
  const closers: Array<() => Promise<void>> = [];
  let server = '';
  let reconciler = '';
  beforeAll(async () => {
    // A server that has received one report, so every family shows its labels.
    const s = await startServer();
    closers.push(() => s.stop());
    const host = hostIdentity();
    const report = await fetch(`${s.url}/v2/hosts/${host.instance_id}/transitions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(batch(host, [transition(1, 'running', { container: { container_id: containerId('docs') } })])),
    });
    expect(report.status).toBe(200);
    const exposition = await (await fetch(`${s.url}/metrics`)).text();
    const sdb = await simpleDbServerMetricsExposition();
    closers.push(sdb.close);
    const r = await reconcilerMetricsExposition();
    closers.push(r.close);
    server = `${exposition}\n${sdb.exposition}`;
    reconciler = r.exposition;
  }, 120_000);
  afterAll(async () => {
    for (const close of closers) await close();
  });

  it('lists exactly the families the server and the reconciler expose', () => {
    const serverTable = referenceTable(families(server).filter((f) => !PROCESS.test(f.name)));
    const reconcilerTable = referenceTable(families(reconciler).filter((f) => !PROCESS.test(f.name)));
    const doc = readFileSync(DOC, 'utf8');
    const expected = withTable(withTable(doc, 'server', serverTable), 'reconciler', reconcilerTable);
    if (process.env.UPDATE_METRICS_DOCS === '1') writeFileSync(DOC, expected);
    expect(doc, 'docs/metrics.md is out of date: UPDATE_METRICS_DOCS=1 npx vitest run test/metrics-docs.test.ts').toBe(expected);
  });

  it('keeps container ids off every series but ecs_id_mapper_container_info', () => {
    const withIds = families(server + reconciler).filter((f) => f.labels.includes('container_id')).map((f) => f.name);
    expect(withIds).toEqual(['ecs_id_mapper_container_info']);
  });
});
