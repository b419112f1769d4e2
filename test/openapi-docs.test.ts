// docs/openapi.json is the API reference generated from the route schemas (the same document the
// server serves at /docs/json). This test fails when the committed copy drifts from the routes.
// To rewrite it: UPDATE_OPENAPI_DOCS=1 npx vitest run test/openapi-docs.test.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, type TestApp } from '../api/test-helpers.js';

const DOC = new URL('../docs/openapi.json', import.meta.url);

interface OpenApiDoc {
  paths: Record<string, Record<string, { responses?: Record<string, unknown>; parameters?: unknown[] }>>;
}

describe('docs/openapi.json', () => {
  let t: TestApp;
  let served: OpenApiDoc;
  beforeAll(async () => {
    t = await buildTestApp();
    const res = await t.app.inject({ url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    served = res.json() as OpenApiDoc;
  });
  afterAll(() => t.close());

  it('equals the document the server generates from its route schemas', () => {
    const text = `${JSON.stringify(served, null, 2)}\n`;
    if (process.env.UPDATE_OPENAPI_DOCS === '1') writeFileSync(DOC, text);
    expect(readFileSync(DOC, 'utf8'), 'docs/openapi.json is out of date: UPDATE_OPENAPI_DOCS=1 npx vitest run test/openapi-docs.test.ts').toBe(text);
  });

  it('documents every API route with a success and an error answer', () => {
    const missing: string[] = [];
    for (const [path, ops] of Object.entries(served.paths)) {
      if (path.startsWith('/docs')) continue;
      for (const [method, op] of Object.entries(ops)) {
        const codes = Object.keys(op.responses ?? {});
        const ok = codes.some((c) => /^[23]/.test(c));
        const error = codes.some((c) => /^[45]/.test(c)) || path === '/metrics';
        if (!ok || !error) missing.push(`${method.toUpperCase()} ${path}: ${codes.join(',') || 'no responses'}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('covers the original routes, the reports and the v2 API', () => {
    const paths = Object.keys(served.paths);
    for (const p of ['/query/container_id/{container_id}', '/report/map', '/report/event', '/health', '/v2/hosts/{instance_id}/transitions', '/v2/hosts/{instance_id}/snapshot', '/v2/containers', '/v2/hosts']) {
      expect(paths).toContain(p);
    }
  });
});
