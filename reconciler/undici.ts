// The two parts of undici the daemon uses — `Agent` (connection pools, also over a unix socket)
// and the `request` API — loaded by their own files. The package index also loads fetch,
// WebSocket, EventSource, caches, cookies, mocks and every interceptor: about 7 MiB more RSS in
// a process whose budget is 64 MiB (docs/benchmarks.md, reconciler section). undici has no
// "exports" map, so these paths are reachable; reconciler/undici.test.ts fails if an upgrade
// moves them. Types still come from the package's own declarations.
//
// Everything in reconciler/ that talks HTTP imports from here, never from 'undici'.
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, Dispatcher, request as undiciRequest } from 'undici';

const load = createRequire(import.meta.url);

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
