// The lookup web page: the few static files of a folder (api/web/, owned by the page's author)
// served at `/`. No directory listing, no path outside the folder, 404 JSON when a file (or the
// whole folder) is absent. Files are read on each request: the folder is small and rarely hit.
import { readFile, stat } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { noRoute } from '../errors.js';
import { errorResponses } from '../schemas.js';
import type { RouteMethods } from '../route-methods.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/**
 * The page loads only its own files and asks only its own server: no inline script, so a name or
 * image from the store could not run even if it ever reached markup; no framing by other sites
 * (clickjacking). `data:` images for the empty favicon index.html declares.
 */
export const WEB_CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** The file a URL path names inside root, or undefined when it would leave root or is not a plain name. */
export function webFilePath(root: string, urlPath: string): string | undefined {
  const rel = urlPath === '' || urlPath.endsWith('/') ? `${urlPath}index.html` : urlPath;
  if (rel.includes('\0') || rel.includes('\\')) return undefined;
  const segments = rel.split('/');
  // No empty segments, no `.`/`..`, no hidden files.
  if (segments.some((s) => s === '' || s.startsWith('.'))) return undefined;
  const base = resolve(root);
  const full = resolve(base, ...segments);
  return full.startsWith(base + sep) ? full : undefined;
}

export const webRoutes: FastifyPluginAsync<{ webRoot?: string; routeMethods?: RouteMethods }> = async (app, opts) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  r.get('/*', {
    schema: {
      summary: 'The lookup web page and its assets (api/web/)',
      tags: ['web'],
      hide: true,
      // The wildcard param is named '*'; a Record because TypeBox cannot compile '*' as a property name.
      params: Type.Record(Type.String(), Type.String({ maxLength: 512 })),
      querystring: Type.Object({}),
      response: { 200: Type.Unknown(), ...errorResponses(404, 405) },
    },
  }, async (req, reply) => {
    // A GET reaches this catch-all on any path no GET route takes, /report/map included.
    if (opts.routeMethods?.answerWrongMethod(req.method, req.url, reply)) return reply;
    const wanted = req.params['*'] ?? '';
    const path = opts.webRoot ? webFilePath(opts.webRoot, wanted) : undefined;
    const missing = () => noRoute(`no such page: /${wanted.slice(0, 200)}`);
    if (!path) throw missing();
    try {
      const st = await stat(path);
      if (!st.isFile()) throw missing();
      const body = await readFile(path);
      return reply
        .type(CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream')
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', WEB_CONTENT_SECURITY_POLICY)
        .header('cache-control', 'no-cache')
        .send(body);
    } catch (err) {
      // No such file, a file where a directory was asked for, or a name longer than the file
      // system allows (255 bytes per component on Linux, well under the 512 the schema admits).
      if (['ENOENT', 'ENOTDIR', 'ENAMETOOLONG'].includes((err as NodeJS.ErrnoException).code ?? '')) throw missing();
      throw err;
    }
  });
};
