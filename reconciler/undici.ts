// The two parts of undici the daemon uses — `Agent` (connection pools, also over a unix socket)
// and the `request` API — loaded by their own files. The package index also loads fetch,
// WebSocket, EventSource, caches, cookies, mocks and every interceptor: about 7 MiB more RSS in
// a process whose budget is 64 MiB (docs/benchmarks.md, reconciler section). undici has no
// "exports" map, so these paths are reachable; reconciler/undici.test.ts fails if an upgrade
// moves them. Types still come from the package's own declarations.
//
// undici's connection code (dispatcher/client.js) also loads its HTTP/2 client at start, which
// loads node:http2, and with it tls and crypto: 26 more built-in modules, about 1 MiB of RSS, for a
// protocol the daemon never speaks (undici offers h2 only with `allowH2`, which nothing here sets;
// the ECS agent, IMDS and Docker speak HTTP/1.1). So before agent.js loads, CommonJS's module cache
// gets an entry for that file whose export refuses to run. An https server URL still works: undici
// loads tls itself when it opens a TLS connection. reconciler/undici.test.ts checks that node:http2
// stays unloaded and fails if an upgrade changes how client.js uses the file.
//
// Everything in reconciler/ that talks HTTP imports from here, never from 'undici'.
import { createRequire, Module } from 'node:module';
import type { Agent as UndiciAgent, Dispatcher, request as undiciRequest } from 'undici';

const load = createRequire(import.meta.url);

const H2_CLIENT = load.resolve('undici/lib/dispatcher/client-h2.js');
if (!(H2_CLIENT in load.cache)) {
  const stub = new Module(H2_CLIENT);
  stub.filename = H2_CLIENT;
  stub.loaded = true;
  stub.exports = function connectH2(): never {
    throw new Error('HTTP/2 is not loaded in the reconciler (reconciler/undici.ts); undici negotiated h2 although allowH2 is off');
  };
  load.cache[H2_CLIENT] = stub;
}

type ApiRequest = (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

export const Agent: typeof UndiciAgent = load('undici/lib/dispatcher/agent.js');
const apiRequest: ApiRequest = load('undici/lib/api/api-request.js');
// Creates undici's global Agent on first load, exactly as the package index does (one per process,
// shared with any other copy of undici through a global symbol).
const { getGlobalDispatcher } = load('undici/lib/global.js') as { getGlobalDispatcher(): Dispatcher };

export type RequestOptions = NonNullable<Parameters<typeof undiciRequest>[1]>;

/**
 * undici's `request(url, options)`: one request through `options.dispatcher` (undici's global
 * Agent when absent), resolving once the response headers arrived. Same contract as the package's
 * export: rejects for transport errors only, never for an HTTP status.
 */
export function request(url: string | URL, options: RequestOptions = {}): Promise<Dispatcher.ResponseData> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher = getGlobalDispatcher(), ...rest } = options;
  return apiRequest.call(dispatcher, {
    ...rest,
    origin: target.origin,
    path: `${target.pathname}${target.search}`,
    method: rest.method ?? (rest.body ? 'PUT' : 'GET'),
  } as Dispatcher.RequestOptions);
}

export type { Dispatcher };
