// `--store` URLs: which backend, and its settings.
import { ConfigError } from './flags.js';

export type StoreConfig =
  | { backend: 'sqlite'; /** File path, or ':memory:'. */ path: string }
  | {
      backend: 'simpledb';
      region: string;
      /** Domain name prefix: domains are <prefix>_containers_<n>, <prefix>_transitions, <prefix>_hosts. */
      prefix: string;
      shards: number;
      /** Endpoint override (the local endpoint in tests); default https://sdb.<region>.amazonaws.com */
      endpoint: URL;
      createDomains: boolean;
    };

const REGION = /^[a-z]{2}(-[a-z]+)+-\d$/;
const PREFIX = /^[A-Za-z0-9_.-]{1,200}$/;

export function parseStoreUrl(text: string): StoreConfig {
  if (text.startsWith('sqlite:')) {
    const path = text.slice('sqlite:'.length);
    if (path === '') throw new ConfigError('--store: sqlite needs a path (sqlite:./data/ecs-id-mapper.db or sqlite::memory:)');
    return { backend: 'sqlite', path };
  }
  if (text.startsWith('simpledb://')) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ConfigError(`--store: not a valid simpledb:// URL: "${text}"`);
    }
    const region = url.hostname;
    if (!REGION.test(region)) throw new ConfigError(`--store: "${region}" is not an AWS region (simpledb://us-east-1?...)`);
    // Only the region and the options mean something: a port, a user name or password (AWS keys
    // put there), a path or a fragment would be dropped without a word. Never echoes a password.
    if (url.username !== '' || url.password !== '') throw new ConfigError('--store: a simpledb:// URL takes no user name or password (AWS keys come from --aws-access-key-id, Vault or the AWS default chain)');
    if (url.port !== '' || (url.pathname !== '' && url.pathname !== '/') || url.hash !== '') {
      throw new ConfigError(`--store: a simpledb:// URL is simpledb://REGION?options only (no port, path or fragment; another endpoint goes in endpoint=), got "${text}"`);
    }
    const known = new Set(['prefix', 'shards', 'endpoint', 'create_domains']);
    const seen = new Set<string>();
    for (const key of url.searchParams.keys()) {
      if (!known.has(key)) throw new ConfigError(`--store: unknown simpledb option "${key}" (known: ${[...known].join(', ')})`);
      // URLSearchParams.get() takes the first value: a second one would be ignored silently.
      if (seen.has(key)) throw new ConfigError(`--store: simpledb option "${key}" is given more than once`);
      seen.add(key);
    }
    const prefix = url.searchParams.get('prefix') ?? 'ecs_id_mapper';
    if (!PREFIX.test(prefix)) throw new ConfigError(`--store: prefix may hold letters, digits, _ - . only, got "${prefix}"`);
    const shardsText = url.searchParams.get('shards') ?? '4';
    if (!/^\d+$/.test(shardsText) || Number(shardsText) < 1 || Number(shardsText) > 100) {
      throw new ConfigError(`--store: shards must be an integer from 1 to 100, got "${shardsText}"`);
    }
    const endpointText = url.searchParams.get('endpoint') ?? (region === 'us-east-1' ? 'https://sdb.amazonaws.com' : `https://sdb.${region}.amazonaws.com`);
    let endpoint: URL;
    try {
      endpoint = new URL(endpointText);
    } catch {
      throw new ConfigError(`--store: endpoint is not a URL: "${endpointText}"`);
    }
    if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') throw new ConfigError(`--store: endpoint must be http(s), got "${endpointText}"`);
    // SimpleDB answers at the endpoint's root: a path, query or credentials would be dropped
    // without a word (and credentials logged with the endpoint). Never echoes a password.
    if (endpoint.username !== '' || endpoint.password !== '') throw new ConfigError('--store: endpoint takes no user name or password (requests are signed with the AWS keys)');
    if ((endpoint.pathname !== '/' && endpoint.pathname !== '') || endpoint.search !== '' || endpoint.hash !== '') {
      throw new ConfigError(`--store: endpoint must be scheme://host[:port] only (SimpleDB answers at its root), got "${endpointText}"`);
    }
    const create = (url.searchParams.get('create_domains') ?? 'false').toLowerCase();
    if (!['true', 'false', '1', '0'].includes(create)) throw new ConfigError(`--store: create_domains must be true or false, got "${create}"`);
    return { backend: 'simpledb', region, prefix, shards: Number(shardsText), endpoint, createDomains: create === 'true' || create === '1' };
  }
  throw new ConfigError(`--store: expected sqlite:PATH, sqlite::memory: or simpledb://REGION?..., got "${text}"`);
}
