// The simulated EC2 instance metadata service: IMDSv2 only (a GET without a valid token gets the
// 401 page), as on instances launched with `HttpTokens=required`, unless a fault says otherwise.
// Error pages are the amazon-ec2-metadata-mock bodies (test/fixtures/imds).
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

export const IMDS_FAULTS = ['ok', '401', 'timeout', 'token-timeout'] as const;
/**
 * ok: IMDSv2 only. 401: every metadata GET is refused. timeout: nothing answers.
 * token-timeout: the token PUT never answers (the container hop-limit problem) and IMDSv1 GETs work.
 */
export type ImdsFault = (typeof IMDS_FAULTS)[number];

const page = (code: string, title: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n   <head>\n      <title>${code} - ${title}</title>\n   </head>\n   <body>\n      <h1>${code} - ${title}</h1>\n   </body>\n</html>\n`;
export const UNAUTHORIZED_PAGE = page('401', 'Unauthorized');
export const BAD_REQUEST_PAGE = page('400', 'Bad Request');
export const NOT_FOUND_PAGE =
  '<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n <head>\n  <title>404 - Not Found</title>\n </head>\n <body>\n  <h1>404 - Not Found</h1>\n </body>\n</html>\n';

export interface ImdsApiState {
  fault: () => ImdsFault;
  now: () => number;
  /** meta-data path (without /latest/meta-data/) → text body. */
  metadata: Record<string, string>;
}

function send(res: ServerResponse, status: number, body: string, contentType = 'text/plain'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function imdsHandler(state: ImdsApiState) {
  /** token → expiry (ms on the injected clock). */
  const tokens = new Map<string, number>();
  return (req: IncomingMessage, res: ServerResponse): void => {
    const fault = state.fault();
    if (fault === 'timeout') return;
    const path = new URL(req.url ?? '/', 'http://imds').pathname;

    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return send(res, 405, '');
      if (fault === 'token-timeout') return;
      // Whole seconds in decimal digits only: Number() also took 1e2, 0x10, 60.0 and +60.
      const ttlText = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
      const ttl = typeof ttlText === 'string' && /^\d{1,5}$/.test(ttlText) ? Number(ttlText) : NaN;
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return send(res, 400, BAD_REQUEST_PAGE, 'text/html');
      const token = randomBytes(24).toString('base64url');
      tokens.set(token, state.now() + ttl * 1000);
      res.setHeader('x-aws-ec2-metadata-token-ttl-seconds', String(ttl));
      return send(res, 200, token);
    }

    if (req.method !== 'GET') return send(res, 405, '');
    const token = req.headers['x-aws-ec2-metadata-token'];
    const expiry = typeof token === 'string' ? tokens.get(token) : undefined;
    const validToken = expiry !== undefined && state.now() < expiry;
    const v1Allowed = fault === 'token-timeout' && token === undefined;
    if (fault === '401' || (!validToken && !v1Allowed)) return send(res, 401, UNAUTHORIZED_PAGE, 'text/html');

    const prefix = '/latest/meta-data/';
    if (path === prefix || path === '/latest/meta-data') return send(res, 200, Object.keys(state.metadata).map((k) => k.split('/')[0]).filter((k, i, all) => all.indexOf(k) === i).join('\n'));
    const value = path.startsWith(prefix) ? state.metadata[path.slice(prefix.length)] : undefined;
    if (value === undefined) return send(res, 404, NOT_FOUND_PAGE, 'text/html');
    send(res, 200, value);
  };
}
