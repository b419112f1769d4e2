// Answers to connections Node could not turn into a request (malformed HTTP, Content-Length with
// Transfer-Encoding, a header block over the size limit, the request timeout). Fastify's default
// writes `{"error":"Bad Request","message":"Client Error","statusCode":400}`; this writes the same
// `{error, message}` body, with a stable code, as every other 4xx. Written straight to the socket
// (there is no request object yet), then the connection is closed, as Node itself does.
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
