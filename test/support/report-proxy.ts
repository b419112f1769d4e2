// A loopback proxy between a reconciler and the server, for fault tests that need to interfere with
// one transitions batch: everything passes through unchanged, except the next
// `POST .../transitions` after `interceptNext`, which goes to the handler. The handler decides
// whether the batch reaches the server and whether an answer ever comes back.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import type { Cleanups } from './fault-rig.js';

export interface InterceptedBatch {
  /** The batch's sequence numbers, in the order sent. */
  seqs: number[];
  /** Sends the batch to the server; resolves with the server's status (its answer is not relayed). */
  forward(): Promise<number>;
  /** Closes the client's connection without an answer. */
  dropConnection(): void;
}

export interface ReportProxy {
  url: string;
  interceptNext(handler: (batch: InterceptedBatch) => Promise<void>): void;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * `upstream` is read per request (the server may restart); every request first waits for `gate()`,
 * so a test can hold traffic while it restarts the server.
 */
export async function startReportProxy(cleanups: Cleanups, upstream: () => string, gate: () => Promise<unknown> = async () => {}): Promise<ReportProxy> {
  let intercept: ((batch: InterceptedBatch) => Promise<void>) | null = null;
  const relay = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const answer = await request(upstream() + req.url, { method: req.method as 'POST', headers: req.headers as Record<string, string>, body: body.length ? body : undefined });
    res.writeHead(answer.statusCode, { 'content-type': String(answer.headers['content-type'] ?? 'application/json') });
    res.end(Buffer.from(await answer.body.arrayBuffer()));
  };
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      await gate();
      if (intercept && req.method === 'POST' && req.url?.endsWith('/transitions')) {
        const handler = intercept;
        intercept = null;
        await handler({
          seqs: (JSON.parse(body.toString('utf8')) as { transitions: Array<{ seq: number }> }).transitions.map((t) => t.seq),
          async forward() {
            const answer = await request(upstream() + req.url, { method: 'POST', headers: req.headers as Record<string, string>, body });
            await answer.body.text();
            return answer.statusCode;
          },
          dropConnection: () => res.socket?.destroy(),
        });
        return;
      }
      await relay(req, res, body);
    })().catch(() => res.socket?.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.add(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    interceptNext(handler) {
      intercept = handler;
    },
  };
}
