// How the original Flask 0.10.1 server shaped its answers, reproduced byte for byte where it was
// right: `jsonify` = Python 2.7 `json.dumps(obj, indent=2, sort_keys=True)` (item separator ", "
// so lines end in ", ", non-ASCII escaped as \uXXXX, no trailing newline), content type
// `application/json` without charset; for a request sent with `X-Requested-With: XMLHttpRequest`
// (jQuery's ajax) the same without indent, on one line.
import type { ContainerRecord } from '../storage/store.js';
import type { Link } from './links.js';

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/** Python 2.7 json.dumps(value, sort_keys=True) without indent: one line, separators ", " and ": ". */
function pythonOneLine(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonOneLine).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    // As JSON.stringify, a key whose value is undefined is left out.
    const keys = Object.keys(object).sort().filter((key) => object[key] !== undefined);
    return `{${keys.map((key) => `${JSON.stringify(key)}: ${pythonOneLine(object[key])}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Python 2.7 json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True), as Flask 0.10.1's
 * jsonify wrote it; with `xhr` (the request's X-Requested-With was XMLHttpRequest) without indent,
 * as jsonify did for such requests.
 */
export function flaskJsonify(value: unknown, { xhr = false }: { xhr?: boolean } = {}): string {
  const text = xhr
    ? pythonOneLine(value)
    // JSON.stringify escapes newlines inside strings, so a literal ",\n" is always an item separator.
    : JSON.stringify(sortKeys(value), null, 2).replace(/,\n/g, ', \n');
  return text.replace(/[^\x20-\x7e\n]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Werkzeug's `request.is_xhr`, which made Flask 0.10.1's jsonify leave out the indent. */
export function isXhr(headers: Record<string, string | string[] | undefined>): boolean {
  const value = headers['x-requested-with'];
  return typeof value === 'string' && value.toLowerCase() === 'xmlhttprequest';
}

export const FLASK_JSON_TYPE = 'application/json';
export const TEXT_TYPE = 'text/plain; charset=utf-8';

/** Epoch seconds as Python 2's str(float) printed them (boto stored every attribute as a string). */
function epochSeconds(iso: string): string {
  const ms = Date.parse(iso);
  const s = ms / 1000;
  return Number.isInteger(s) ? `${s}.0` : String(s);
}

/**
 * Every attribute of a container under the original names (all strings, as SimpleDB held them),
 * plus `<link>_url` for each configured link and the new record fields under their own names.
 */
export function legacyAttributes(record: ContainerRecord, links: Link[]): Record<string, unknown> {
  const port = record.ports[0];
  const original: Record<string, string | null> = {
    container_id: record.container_id,
    container_name: record.container_name,
    // The original agent sent "0" when a container had no published port.
    container_port: port ? String(port.container_port) : '0',
    instance_port: port && port.host_port !== null ? String(port.host_port) : '0',
    task_id: record.task_id,
    task_name: record.task_family,
    task_version: record.task_version,
    instance_ip: record.instance_ip,
    instance_id: record.instance_id,
    instance_type: record.instance_type,
    instance_az: record.instance_az,
    desired_status: record.desired_status,
    known_status: record.known_status,
    host_name: record.host_name,
    cluster_name: record.cluster,
    ecs_agent_version: record.ecs_agent_version,
    // The agent's own sample time, as the original stored it; records no legacy agent wrote have
    // none, and answer the time the server last saw them.
    sample_time: epochSeconds(record.sampled_at ?? record.last_seen),
  };
  const urls: Record<string, string> = {};
  for (const link of links) urls[`${link.name}_url`] = link.url;
  return { ...record, ...original, ...urls };
}
