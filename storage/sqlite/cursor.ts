// Keyset cursors for listContainers: an opaque token holding the last container id of a page.
// Anything this module did not produce is rejected with InvalidCursorError.
import { CONTAINER_ID } from '../../wire/index.js';
import { InvalidCursorError } from '../store.js';

const PREFIX = 'c1:';
const BASE64URL = /^[A-Za-z0-9_-]{1,200}$/;

export function encodeCursor(lastContainerId: string): string {
  return Buffer.from(PREFIX + lastContainerId, 'utf8').toString('base64url');
}

/** The container id the next page starts after. */
export function decodeCursor(cursor: string): string {
  if (!BASE64URL.test(cursor)) throw new InvalidCursorError(cursor);
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = text.slice(PREFIX.length);
  if (!text.startsWith(PREFIX) || !CONTAINER_ID.test(id) || encodeCursor(id) !== cursor) throw new InvalidCursorError(cursor);
  return id;
}
