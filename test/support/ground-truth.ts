// The ground truth for fault tests: what the server must hold, computed from the simulated host
// (every container ever listed, in the state its task is in now, `gone` once cleaned up) and from
// the transitions the reconciler emitted (each with its per-host seq). `verifyAgainstServer`
// compares it with the server's read API (`/v2/containers`, `/v2/containers/:id/history`):
//   - final states (and task ARNs) equal the truth;
//   - every (host, seq) appears once in all history, never twice;
//   - per container the history is one chain (from = previous to) whose states equal the emitted
//     chain when emitted transitions were recorded, with no snapshot repair;
//   - no record regressed: every state a RecordWatch sampled from the server while the fault was
//     on appears in the final history chain in the order it was sampled.
import type { SimTask, SimulatedHost } from '../../tools/simulate-host/index.js';
import type { LifecycleState, Transition } from '../../wire/index.js';

export interface ServerRecord {
  container_id: string;
  state: LifecycleState;
  task_arn: string | null;
}

export interface HistoryEntry {
  seq: number | null;
  from: LifecycleState | null;
  to: LifecycleState | null;
  reason: string;
  host: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lifecycle state the reconciler must report for a container of `task` (the agent's view). */
export function stateOfTask(task: Pick<SimTask, 'known_status' | 'desired_status'>): LifecycleState {
  if (task.known_status === 'STOPPED') return 'stopped';
  if (task.known_status === 'RUNNING') return task.desired_status === 'STOPPED' ? 'stopping' : 'running';
  return 'pending';
}

export class GroundTruth {
  /** container id → task ARN, for every container the host ever listed. */
  readonly everSeen = new Map<string, string>();
  /** Transitions the reconciler appended to its outbox (when the test can see them), by seq. */
  readonly emitted = new Map<number, Transition>();
  private emittedTwice: number[] = [];

  constructor(readonly instanceId: string) {}

  /** Records every container of the host's current tasks; call after each change to the host. */
  observe(tasks: readonly SimTask[]): void {
    for (const t of tasks) for (const c of t.containers) this.everSeen.set(c.docker_id, t.arn);
  }

  /**
   * Records transitions as the loop appended them (PassResult.transitions). A container the
   * daemon emitted was seen, even when the test never caught it listed (it came and went between
   * the test's looks): the server must hold it too.
   */
  recordEmitted(transitions: readonly Transition[]): void {
    for (const t of transitions) {
      if (this.emitted.has(t.seq)) this.emittedTwice.push(t.seq);
      this.emitted.set(t.seq, t);
      if (!this.everSeen.has(t.container_id) && t.container.task_arn) this.everSeen.set(t.container_id, t.container.task_arn);
    }
  }

  /** The state every container ever seen must have on the server now (the current tasks are listable, so they count as seen). */
  expected(tasks: readonly SimTask[]): Map<string, LifecycleState> {
    this.observe(tasks);
    const now = new Map<string, LifecycleState>();
    for (const t of tasks) for (const c of t.containers) now.set(c.docker_id, stateOfTask(t));
    const out = new Map<string, LifecycleState>();
    for (const id of this.everSeen.keys()) out.set(id, now.get(id) ?? 'gone');
    return out;
  }

  seqsEmittedTwice(): number[] {
    return [...this.emittedTwice];
  }
}

/** Emitted state chain per container, in seq order. */
function emittedChains(emitted: ReadonlyMap<number, Transition>): Map<string, LifecycleState[]> {
  const out = new Map<string, LifecycleState[]>();
  for (const seq of [...emitted.keys()].sort((a, b) => a - b)) {
    const t = emitted.get(seq)!;
    const chain = out.get(t.container_id) ?? [];
    chain.push(t.to);
    out.set(t.container_id, chain);
  }
  return out;
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/** Every container record of the host, through the paginated `/v2/containers`. */
export async function serverRecords(baseUrl: string, instanceId: string): Promise<Map<string, ServerRecord>> {
  const out = new Map<string, ServerRecord>();
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ instance_id: instanceId, limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const page: { items: ServerRecord[]; next_cursor: string | null } = await getJson(`${baseUrl}/v2/containers?${q}`);
    for (const r of page.items) out.set(r.container_id, { container_id: r.container_id, state: r.state, task_arn: r.task_arn || null });
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

export async function serverHistory(baseUrl: string, containerId: string): Promise<HistoryEntry[]> {
  const body = await getJson<{ history: HistoryEntry[] }>(`${baseUrl}/v2/containers/${containerId}/history`);
  return body.history;
}

/** Differences between the server's records and the truth (empty when equal). */
export async function recordDifferences(baseUrl: string, truth: GroundTruth, tasks: readonly SimTask[]): Promise<string[]> {
  const want = truth.expected(tasks);
  const have = await serverRecords(baseUrl, truth.instanceId);
  const diff: string[] = [];
  for (const [id, state] of want) {
    const got = have.get(id);
    if (!got) diff.push(`${id.slice(0, 12)}: missing (want ${state})`);
    else if (got.state !== state) diff.push(`${id.slice(0, 12)}: ${got.state} (want ${state})`);
    else if (got.task_arn !== truth.everSeen.get(id)) diff.push(`${id.slice(0, 12)}: task ${got.task_arn} (want ${truth.everSeen.get(id)})`);
  }
  for (const [id, r] of have) if (!want.has(id)) diff.push(`${id.slice(0, 12)}: unexpected record (${r.state})`);
  return diff;
}

/**
 * Waits until the server's records equal the truth. `withinMs` is the stated recovery bound (wall
 * time); the error lists what still differs. Returns the wall time it took.
 */
export async function waitForConvergence(baseUrl: string, truth: GroundTruth, sim: Pick<SimulatedHost, 'state'>, withinMs: number): Promise<number> {
  const start = Date.now();
  let diff: string[] = ['not checked yet'];
  while (Date.now() - start < withinMs) {
    try {
      diff = await recordDifferences(baseUrl, truth, sim.state);
      if (diff.length === 0) return Date.now() - start;
    } catch (err) {
      diff = [`server not readable: ${(err as Error).message}`];
    }
    await sleep(50);
  }
  throw new Error(`server records did not equal the ground truth within ${withinMs} ms: ${diff.slice(0, 8).join('; ')}${diff.length > 8 ? ` (+${diff.length - 8})` : ''}`);
}

/**
 * Samples the server's records while a fault is on, so a state that went backwards (even
 * briefly, and later repaired) is caught by verifyAgainstServer.
 */
export class RecordWatch {
  readonly samples = new Map<string, LifecycleState[]>();
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(private readonly baseUrl: () => string, private readonly instanceId: string, private readonly intervalMs = 40) {}

  start(): this {
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    return this;
  }

  async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const records = await serverRecords(this.baseUrl(), this.instanceId);
      for (const r of records.values()) {
        const seen = this.samples.get(r.container_id) ?? [];
        if (seen[seen.length - 1] !== r.state) seen.push(r.state);
        this.samples.set(r.container_id, seen);
      }
    } catch {
      // The server is down on purpose in some tests: nothing to sample then.
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One last sample (the state the test ends on), then stops. */
  async finish(): Promise<void> {
    await this.sample();
    this.stop();
  }
}

export interface Verification {
  containers: number;
  historyEntries: number;
}

/** True when `sub` occurs in `chain` in order (not necessarily contiguous). */
function isSubsequence<T>(sub: readonly T[], chain: readonly T[]): boolean {
  let i = 0;
  for (const x of chain) if (i < sub.length && sub[i] === x) i++;
  return i === sub.length;
}

/**
 * The full comparison every fault test ends with: waits (≤ withinMs, default 10 s) for the final
 * states to equal the truth, then checks history. Throws an Error listing every violation.
 */
export async function verifyAgainstServer(
  baseUrl: string,
  truth: GroundTruth,
  sim: Pick<SimulatedHost, 'state'>,
  options: { watch?: RecordWatch; allowSnapshotRepairs?: boolean; withinMs?: number } = {},
): Promise<Verification> {
  // The host may still be changing (a stopped task reaching its cleanup time): converge first,
  // then read records and history once and check them together.
  const end = Date.now() + (options.withinMs ?? 10_000);
  for (;;) {
    await waitForConvergence(baseUrl, truth, sim, Math.max(1, end - Date.now()));
    try {
      return await verifyOnce(baseUrl, truth, sim, options);
    } catch (err) {
      if (!(err instanceof HostMovedError) || Date.now() > end) throw err;
    }
  }
}

class HostMovedError extends Error {}

async function verifyOnce(
  baseUrl: string,
  truth: GroundTruth,
  sim: Pick<SimulatedHost, 'state'>,
  options: { watch?: RecordWatch; allowSnapshotRepairs?: boolean },
): Promise<Verification> {
  const problems: string[] = [];
  // What was emitted before the records were read; anything later belongs to the next round.
  const emittedNow = new Map(truth.emitted);
  const maxSeq = Math.max(0, ...emittedNow.keys());
  const diff = await recordDifferences(baseUrl, truth, sim.state);
  if (diff.length > 0) throw new HostMovedError(diff.join('; '));
  if (truth.seqsEmittedTwice().length > 0) problems.push(`the reconciler emitted seqs twice: ${truth.seqsEmittedTwice().join(',')}`);

  const records = await serverRecords(baseUrl, truth.instanceId);
  const emitted = emittedChains(emittedNow);
  const seqs = new Map<number, string>();
  let historyEntries = 0;
  for (const id of truth.everSeen.keys()) {
    const short = id.slice(0, 12);
    const history = await serverHistory(baseUrl, id);
    historyEntries += history.length;
    const chain: Array<LifecycleState | null> = [];
    let previous: LifecycleState | null = null;
    for (const h of history) {
      if (h.reason === 'snapshot' && !options.allowSnapshotRepairs) problems.push(`${short}: a snapshot had to repair the record (a transition was lost)`);
      if (h.from !== previous) problems.push(`${short}: history is not one chain: ${JSON.stringify(history.map((x) => [x.seq, x.from, x.to]))}`);
      if (h.seq !== null) {
        const key = h.seq;
        if (emittedNow.size > 0 && key > maxSeq) throw new HostMovedError(`seq ${key} emitted while verifying`);
        if (h.host !== truth.instanceId) problems.push(`${short}: history entry from host ${h.host}`);
        if (seqs.has(key)) problems.push(`seq ${key} is in history twice (${seqs.get(key)!.slice(0, 12)} and ${short})`);
        seqs.set(key, id);
        const t = emittedNow.get(key);
        if (emittedNow.size > 0 && (!t || t.container_id !== id || t.to !== h.to)) problems.push(`${short}: history seq ${key} → ${h.to} was not emitted as such`);
      }
      chain.push(h.to);
      previous = h.to;
    }
    const record = records.get(id);
    if (record && previous !== record.state) problems.push(`${short}: history ends in ${previous}, record says ${record.state}`);
    const emittedChain = emitted.get(id);
    if (emittedNow.size > 0 && emittedChain && JSON.stringify(emittedChain) !== JSON.stringify(chain)) {
      problems.push(`${short}: history ${JSON.stringify(chain)} ≠ emitted ${JSON.stringify(emittedChain)}`);
    }
    const sampled = options.watch?.samples.get(id);
    if (sampled && !isSubsequence(sampled, chain)) problems.push(`${short}: record regressed: served ${JSON.stringify(sampled)}, history ${JSON.stringify(chain)}`);
  }
  // Every emitted transition of a container the truth knows must be in history (nothing lost).
  for (const [seq, t] of emittedNow) {
    if (truth.everSeen.has(t.container_id) && !seqs.has(seq)) problems.push(`emitted seq ${seq} (${t.container_id.slice(0, 12)} → ${t.to}) is not in history`);
  }
  if (problems.length > 0) throw new Error(`server disagrees with the ground truth:\n  ${problems.slice(0, 15).join('\n  ')}${problems.length > 15 ? `\n  (+${problems.length - 15} more)` : ''}`);
  return { containers: truth.everSeen.size, historyEntries };
}
