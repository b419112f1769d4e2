// A real server for tests that need its live /metrics: `runServer` exactly as `ecs-id-mapper server`
// runs it (config parsed by the config module, store opened and instrumented, default process
// metrics), on 127.0.0.1 with a free port and an in-memory SQLite store. The URL is read from the
// server's own "listening" log line.
import { PassThrough } from 'node:stream';
import { runServer } from '../../api/main.js';
import { loadCommand, type ServerConfig } from '../../config/index.js';

export interface RunningServer {
  url: string;
  /** Everything the server logged (pino JSON lines). */
  log(): string;
  /** Aborts runServer and waits for its clean shutdown. */
  stop(): Promise<void>;
}

export async function startServer(extraArgs: string[] = []): Promise<RunningServer> {
  const loaded = loadCommand('server', ['--host', '127.0.0.1', '--port', '0', '--store', 'sqlite::memory:', ...extraArgs], {});
  if (loaded.kind !== 'run') throw new Error('server config did not load');
  const abort = new AbortController();
  const logStream = new PassThrough();
  let logged = '';
  const listening = new Promise<string>((resolve) => {
    logStream.on('data', (chunk: Buffer) => {
      logged += chunk.toString('utf8');
      const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(logged);
      if (match) resolve(match[1]);
    });
  });
  const done = runServer(loaded.config as ServerConfig, { signal: abort.signal, logStream });
  const url = await Promise.race([
    listening,
    done.then(() => Promise.reject(new Error(`server stopped before listening:\n${logged}`))),
  ]);
  let stopped = false;
  return {
    url,
    log: () => logged,
    async stop() {
      if (stopped) return;
      stopped = true;
      abort.abort();
      await done;
    },
  };
}

export interface LiveExposition {
  exposition: string;
  close(): Promise<void>;
}

/** GET /metrics of a freshly started server (the server is stopped by `close`). */
export async function serverMetricsExposition(): Promise<LiveExposition> {
  const server = await startServer();
  try {
    const res = await fetch(`${server.url}/metrics`);
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
    return { exposition: await res.text(), close: () => server.stop() };
  } catch (err) {
    await server.stop();
    throw err;
  }
}
