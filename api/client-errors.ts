// Answers to connections Node could not turn into a request (malformed HTTP, Content-Length with
// Transfer-Encoding, a header block over the size limit, the request timeout). Fastify's default
// writes `{"error":"Bad Request","message":"Client Error","statusCode":400}`; this writes the same
// `{error, message}` body, with a stable code, as every other 4xx. Written straight to the socket
// (there is no request object yet), then the connection is closed, as Node itself does.
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { API_ERRORS, errorBody, type ApiErrorCode } from './errors.js';

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

function classify(code: string | undefined): { code: ApiErrorCode; message: string } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { code: 'ERR_REQUEST_TIMEOUT', message: 'the request did not arrive within the request timeout' };
  if (code === 'HPE_HEADER_OVERFLOW') return { code: 'ERR_HEADERS_TOO_LARGE', message: 'the request headers exceed the allowed size' };
  return { code: 'ERR_BAD_REQUEST', message: 'the request is not valid HTTP/1.1' };
}

export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  // A reset or already destroyed socket has nobody left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const { code, message } = classify(err.code);
  const status = API_ERRORS[code].status;
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

/** An HTTP/1.1 request without a Host header, which RFC 9112 (3.2) says a server must refuse with 400. */
function missingHost(req: IncomingMessage): boolean {
  return req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1;
}

/**
 * The HTTP server Fastify listens with (its serverFactory), as Fastify would build it, except that
 * Node's own check of the Host header is off: Node answers that 400 itself, with an empty body, and
 * tells no handler. The same check here answers our JSON body instead, before Fastify sees the request.
 */
export function createHttpServer(
  handler: RequestListener,
  options: { http: ServerOptions; keepAliveTimeout: number; requestTimeout: number; connectionTimeout: number },
): Server {
  const server = createServer({ ...options.http, requireHostHeader: false }, (req: IncomingMessage, res: ServerResponse) => {
    if (!missingHost(req)) return handler(req, res);
    const body = JSON.stringify(errorBody('ERR_BAD_REQUEST', 'an HTTP/1.1 request needs a Host header'));
    res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
    res.end(body);
  });
  server.keepAliveTimeout = options.keepAliveTimeout;
  server.requestTimeout = options.requestTimeout;
  server.setTimeout(options.connectionTimeout);
  return server;
}
