// `--history-limit` from the command line to the store: a container restarting in place keeps only
// its latest entries, as the API answers them.
import { afterEach, describe, expect, it } from 'vitest';
import { batch, containerId, hostIdentity, transition } from '../storage/store.fixtures.js';
import { startServer, type RunningServer } from './support/live-server.js';

const host = hostIdentity();
const id = containerId('restarting-in-place');
const restarts = Array.from({ length: 30 }, (_, i) => i + 1).map((seq) =>
  transition(seq, seq % 2 === 1 ? 'running' : 'stopped', { from: seq === 1 ? null : seq % 2 === 1 ? 'stopped' : 'running', container: { container_id: id } }),
);

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function reportAndReadHistory(s: RunningServer): Promise<number[]> {
  const report = await fetch(`${s.url}/v2/hosts/${host.instance_id}/transitions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(batch(host, restarts)),
  });
  expect(report.status).toBe(200);
  expect(await report.json()).toMatchObject({ applied: 30, acked_seq: 30 });
  const res = await fetch(`${s.url}/v2/containers/${id}/history`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { history: Array<{ seq: number }> }).history.map((h) => h.seq);
}

describe('--history-limit', () => {
  it('keeps only the latest entries of a container restarting in place', async () => {
    server = await startServer(['--history-limit', '10']);
    expect(await reportAndReadHistory(server)).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
  });

  it('keeps every entry under the default limit of 1,000', async () => {
    server = await startServer();
    expect(await reportAndReadHistory(server)).toHaveLength(30);
  });
});
