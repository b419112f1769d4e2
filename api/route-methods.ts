// Which methods the server answers on a path, so that a known path asked with the wrong method is
// a 405 naming the right ones (RFC 9110, 15.5.6), as Flask answered the original routes. It was a
// 404, which reads as a wrong URL: an agent misconfigured to GET /report/map was told the route
// did not exist.
import type { FastifyReply } from 'fastify';
import { errorBody } from './errors.js';

interface RouteShape {
  method: string;
  pattern: RegExp;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export class RouteMethods {
  private readonly routes: RouteShape[] = [];

  /**
   * Records a route as Fastify's onRoute hook gives it (`/v2/hosts/:instance_id/snapshot`). The
   * web page's catch-all `/*` is left out: it would make GET look allowed on every path.
   */
  add(method: string | string[], url: string): void {
    if (url === '/*') return;
    const pattern = new RegExp(
      `^${url
        .split('/')
        .map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : escapeRegExp(segment)))
        .join('/')}$`,
    );
    for (const m of Array.isArray(method) ? method : [method]) this.routes.push({ method: m.toUpperCase(), pattern });
  }

  /** The methods some route answers on this path (no query string), sorted; empty for an unknown path. */
  allowed(path: string): string[] {
    const methods = new Set(this.routes.filter((r) => r.pattern.test(path)).map((r) => r.method));
    return [...methods].sort();
  }

  /**
   * Answers 405 with `Allow` when the path is known under other methods than the request's, and
   * not under the request's own (OPTIONS: 200 with `Allow`), and says whether it did; the caller
   * answers 404 otherwise.
   */
  answerWrongMethod(method: string, url: string, reply: FastifyReply): boolean {
    const path = url.split('?')[0];
    const known = this.allowed(path);
    // A route that answers this method found nothing (a file missing under /docs/static/*): a 404.
    if (known.includes(method)) return false;
    // OPTIONS on a known path: the methods it takes, as Flask answered it (200, empty body).
    if (method === 'OPTIONS' && known.length > 0) {
      void reply.code(200).header('allow', [...known, 'OPTIONS'].sort().join(', ')).send();
      return true;
    }
    if (known.length === 0) return false;
    // OPTIONS too: every known path answers it (above), and Flask's 405 listed it with the route's own.
    const allowed = [...known, 'OPTIONS'].sort();
    void reply
      .code(405)
      .header('allow', allowed.join(', '))
      .type('application/json; charset=utf-8')
      .send(errorBody('ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path.slice(0, 200)} (allowed: ${allowed.join(', ')})`));
    return true;
  }
}
