// Builders shared by the api tests and the api benchmark: an app on a real in-memory SQLite store,
// and report bodies shaped exactly as the original Python agent sent them.
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Registry } from 'prom-client';
import { parseLinks } from '../config/links.js';
import { openStore } from '../storage/index.js';
import type { Store } from '../storage/store.js';
import { buildServer, type ServerDeps } from './server.js';

export interface TestApp {
  app: FastifyInstance;
  store: Store;
  registry: Registry;
  /** Moves the server's clock. */
  setNow(at: Date): void;
  close(): Promise<void>;
}

export async function buildTestApp(overrides: Partial<ServerDeps> = {}, store?: Store): Promise<TestApp> {
  const s = store ?? (await openStore({ backend: 'sqlite', path: ':memory:' }));
  const registry = overrides.registry ?? new Registry();
  let now = new Date('2026-01-01T00:10:00.000Z');
  const app = await buildServer({
    store: s,
    registry,
    logger: false,
    links: parseLinks([]),
    cadvisorPort: 8080,
    hostStaleAfterMs: 15 * 60_000,
    bodyLimitBytes: 1024 * 1024,
    reportRateLimitPerMinute: 10_000,
    now: () => now,
    ...overrides,
  });
  await app.ready();
  return {
    app,
    store: s,
    registry,
    setNow(at) {
      now = at;
    },
    async close() {
      await app.close();
      await s.close();
    },
  };
}

/** One entry of the original agent's map, as agent/agent.py built it. */
export interface AgentEntry {
  container_id: string;
  container_name: string;
  container_port: string;
  task_id: string;
  task_name: string;
  task_version: string;
  instance_port: string;
  instance_ip: string;
  instance_id: string;
  instance_type: string;
  instance_az: string;
  desired_status: string;
  known_status: string;
  host_name: string;
  cluster_name: string;
  ecs_agent_version: string;
  sample_time: number;
}

export function agentKey(entry: Pick<AgentEntry, 'container_id' | 'task_id' | 'desired_status'>): string {
  return createHash('sha256').update(entry.container_id + entry.task_id + entry.desired_status).digest('hex');
}

export function agentEntry(overrides: Partial<AgentEntry> & { container_id: string; task_id: string }): AgentEntry {
  return {
    container_name: 'app',
    container_port: '80',
    task_name: 'web',
    task_version: '3',
    instance_port: '32768',
    instance_ip: '10.0.1.17',
    instance_id: 'i-0123456789abcdef0',
    instance_type: 'm5.large',
    instance_az: 'us-east-1a',
    desired_status: 'RUNNING',
    known_status: 'RUNNING',
    host_name: 'ip-10-0-1-17',
    cluster_name: 'prod',
    ecs_agent_version: '1.14.4',
    sample_time: 1767225600.25,
    ...overrides,
  };
}

/** The agent's whole map: `{ <sha256 key>: entry }`. */
export function agentMap(entries: AgentEntry[]): Record<string, AgentEntry> {
  return Object.fromEntries(entries.map((e) => [agentKey(e), e]));
}
