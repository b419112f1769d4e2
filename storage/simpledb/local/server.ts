// A SimpleDB-compatible HTTP endpoint (Query API 2009-04-15) for tests and local development.
// POST form-encoded or GET query-string requests, SigV2-verified, answered with SimpleDB's XML.
//
// Fault switches (from config, and at runtime through the admin endpoint, which is not part of
// the SimpleDB API and needs no signature):
//   GET  /__admin/faults        → current switches as JSON
//   POST /__admin/faults        ← JSON {failureRate?, latencyMs?, staleReads?, staleWindowMs?, timeoutRate?, appliedFailures?}
//   POST /__admin/reset         → drops every domain
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TIMER_MAX_MS } from '../../../config/flags.js';
import { authenticate, checkVersion, type Credentials } from './auth.js';
import { Database } from './database.js';
import { SdbError } from './errors.js';
import { checkParameterNames, operations } from './operations.js';
import type { Params } from './params.js';
import { DataFileError, DataFileSaver, readDataFile, writeDataFileAtomically } from './persistence.js';
import { errorXml, successXml } from './xml.js';

export interface Faults {
  /** Share of SimpleDB requests (0..1) answered 503 ServiceUnavailable without effect. */
  failureRate: number;
  /** Delay added before every SimpleDB answer. */
  latencyMs: number;
  /** Eventually consistent reads see items as they were before their latest write. */
  staleReads: boolean;
  /** How long after a write a stale read still sees the previous version. */
  staleWindowMs: number;
  /** Share of Select requests (0..1) answered 408 RequestTimeout. */
  timeoutRate: number;
  /**
   * The next N write requests (PutAttributes, DeleteAttributes and their batch forms) take effect
   * and are then answered 500 InternalError, as AWS may answer a request it applied. Counts down.
   */
  appliedFailures: number;
}

export const DEFAULT_FAULTS: Faults = { failureRate: 0, latencyMs: 0, staleReads: false, staleWindowMs: 1000, timeoutRate: 0, appliedFailures: 0 };

const WRITE_ACTIONS = new Set(['PutAttributes', 'DeleteAttributes', 'BatchPutAttributes', 'BatchDeleteAttributes']);

export interface SimpleDbLocalOptions extends Credentials {
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  dataFile?: string;
  faults?: Partial<Faults>;
  /** Injected for deterministic tests. */
  random?: () => number;
  now?: () => number;
  /** Accepted Timestamp skew (default 15 minutes); null disables the check. */
  maxClockSkewMs?: number | null;
  /** One call per request and per background problem (data file not writable). */
  log?: (entry: Record<string, unknown>) => void;
}

export interface SimpleDbLocal {
  /** Base URL, e.g. http://127.0.0.1:40123 */
  url: string;
  port: number;
  setFaults(faults: Partial<Faults>): Faults;
  faults(): Faults;
  /** Drops every domain (and saves, with a data file). */
  reset(): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 2 * 1024 * 1024;

export class FaultsError extends Error {
  override readonly name = 'FaultsError';
  readonly code = 'SIMPLEDB_LOCAL_BAD_FAULTS';
}

/** Validates a partial fault configuration (from config or the admin endpoint). */
export function parseFaults(input: unknown): Partial<Faults> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new FaultsError('faults must be a JSON object');
  const out: Partial<Faults> = {};
  for (const [key, value] of Object.entries(input)) {
    switch (key) {
      case 'failureRate':
      case 'timeoutRate':
        if (typeof value !== 'number' || !(value >= 0 && value <= 1)) throw new FaultsError(`${key} must be a number from 0 to 1`);
        out[key] = value;
        break;
      case 'latencyMs':
        // Node runs a timer longer than 2^31 - 1 ms after 1 ms: a longer latency would be none.
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > TIMER_MAX_MS) throw new FaultsError(`latencyMs must be a number of milliseconds from 0 to ${TIMER_MAX_MS}`);
        out.latencyMs = value;
        break;
      case 'staleWindowMs':
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new FaultsError(`${key} must be a number of milliseconds ≥ 0`);
        out[key] = value;
        break;
      case 'appliedFailures':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw new FaultsError('appliedFailures must be a whole number of requests ≥ 0');
        out.appliedFailures = value;
        break;
      case 'staleReads':
        if (typeof value !== 'boolean') throw new FaultsError('staleReads must be true or false');
        out.staleReads = value;
        break;
      default:
        throw new FaultsError(`unknown fault "${key}" (known: ${Object.keys(DEFAULT_FAULTS).join(', ')})`);
    }
  }
  return out;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new SdbError('InvalidHttpRequest', `The request body is larger than ${MAX_BODY_BYTES} bytes.`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** First occurrence wins for repeated names. */
function toParams(search: URLSearchParams): Params {
  const params: Params = {};
  for (const [k, v] of search) if (!(k in params)) params[k] = v;
  return params;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function startSimpleDbLocal(opts: SimpleDbLocalOptions): Promise<SimpleDbLocal> {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const log = opts.log ?? (() => {});
  let faults: Faults = { ...DEFAULT_FAULTS, ...parseFaults(opts.faults ?? {}) };
  const db = new Database({ now, staleReads: () => faults.staleReads, staleWindowMs: () => faults.staleWindowMs });
  if (opts.dataFile) {
    const file = readDataFile(opts.dataFile);
    if (file) {
      try {
        db.loadFile(file);
      } catch (err) {
        throw new DataFileError(`cannot load data file ${opts.dataFile}: ${(err as Error).message}`, opts.dataFile, { cause: err });
      }
    } else {
      // Written now, so a file that cannot be written (a missing directory, no permission) stops
      // the start instead of every later change failing to save with an error in the log only.
      writeDataFileAtomically(opts.dataFile, db.toFile());
    }
  }
  const saver = opts.dataFile
    ? new DataFileSaver(opts.dataFile, () => db.toFile(), (err) => log({ level: 'error', msg: err.message }))
    : undefined;
  const ctx = { db, now };

  function sendXml(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/xml; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  function sendJson(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === '/__admin/faults' && req.method === 'GET') return sendJson(res, 200, faults);
    if (path === '/__admin/faults' && req.method === 'POST') {
      let input: unknown;
      try {
        input = JSON.parse((await readBody(req)).toString('utf8') || '{}');
      } catch {
        return sendJson(res, 400, { error: 'bad_request', message: 'body must be JSON' });
      }
      try {
        faults = { ...faults, ...parseFaults(input) };
      } catch (err) {
        return sendJson(res, 400, { error: 'bad_request', message: (err as Error).message });
      }
      return sendJson(res, 200, faults);
    }
    if (path === '/__admin/reset' && req.method === 'POST') {
      db.clear();
      saver?.schedule();
      return sendJson(res, 200, { reset: true });
    }
    return sendJson(res, 404, { error: 'not_found', message: `no admin route ${req.method} ${path}` });
  }

  async function handleSimpleDb(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const requestId = randomUUID();
    const started = now();
    let status = 200;
    let body: string;
    let action: string | undefined;
    try {
      if (req.method !== 'GET' && req.method !== 'POST') {
        throw new SdbError('UnsupportedHttpVerb', `The requested HTTP verb is not supported: ${req.method}`);
      }
      const raw = await readBody(req);
      const params = toParams(req.method === 'POST' ? new URLSearchParams(raw.toString('utf8')) : url.searchParams);
      action = params.Action;
      authenticate(
        { method: req.method, host: req.headers.host ?? '', path: url.pathname, params },
        { credentials: opts, now, maxClockSkewMs: opts.maxClockSkewMs === undefined ? 15 * 60_000 : opts.maxClockSkewMs },
      );
      checkVersion(params);
      if (!action) throw new SdbError('MissingAction', 'No action was supplied with this request.');
      const operation = Object.hasOwn(operations, action) ? operations[action] : undefined;
      if (!operation) throw new SdbError('InvalidAction', `The action ${action} is not valid for this web service.`);
      checkParameterNames(action, params);
      if (faults.failureRate > 0 && random() < faults.failureRate) {
        throw new SdbError('ServiceUnavailable', 'Service AmazonSimpleDB is currently unavailable. Please try again later.');
      }
      if (action === 'Select' && faults.timeoutRate > 0 && random() < faults.timeoutRate) {
        throw new SdbError('RequestTimeout', 'A timeout occurred when attempting to query domain with query expression.');
      }
      const out = operation(ctx, params);
      if (out.mutated) saver?.schedule();
      if (faults.appliedFailures > 0 && WRITE_ACTIONS.has(action)) {
        faults = { ...faults, appliedFailures: faults.appliedFailures - 1 };
        throw new SdbError('InternalError', 'Request could not be executed due to an internal service error.');
      }
      body = successXml(action, out.result, requestId, out.boxUsage);
    } catch (err) {
      const e = err instanceof SdbError ? err : new SdbError('InternalError', 'Request could not be executed due to an internal service error.', { cause: err });
      if (!(err instanceof SdbError)) log({ level: 'error', msg: 'internal error', err: String((err as Error)?.stack ?? err) });
      status = e.status;
      body = errorXml(e.code, e.message, requestId, e.code === 'ServiceUnavailable' ? 0 : 0.0000219907);
    }
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    log({ level: 'debug', msg: 'request', action: action ?? null, status, request_id: requestId, duration_ms: now() - started });
    sendXml(res, status, body);
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const handler = url.pathname.startsWith('/__admin/') ? handleAdmin(req, res, url.pathname) : handleSimpleDb(req, res, url);
    handler.catch((err: unknown) => {
      log({ level: 'error', msg: 'request failed', err: String(err) });
      if (!res.headersSent) sendXml(res, 500, errorXml('InternalError', 'Request could not be executed due to an internal service error.', randomUUID(), 0));
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const hostForUrl = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  return {
    url: `http://${hostForUrl}:${address.port}`,
    port: address.port,
    setFaults(next) {
      faults = { ...faults, ...parseFaults(next) };
      return { ...faults };
    },
    faults: () => ({ ...faults }),
    reset() {
      db.clear();
      saver?.schedule();
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        server.close((err) => {
          saver?.flush();
          if (err) reject(err);
          else resolve();
        });
        server.closeAllConnections();
      });
    },
  };
}
