// The KV v2 data path that --vault-secret-path names. Read by config/, which refuses a bad flag at
// start, and by the Vault client; no imports, so config/ (which the reconciler loads too) does not
// load node-vault with it.

/** `secret/ecs-id-mapper` or `secret/data/ecs-id-mapper` → `secret/data/ecs-id-mapper`; undefined without a mount and a path. */
export function kvDataPathOf(secretPath: string): string | undefined {
  const parts = secretPath.split('/').filter((p) => p !== '');
  if (parts.length < 2) return undefined;
  return parts[1] === 'data' && parts.length > 2 ? parts.join('/') : [parts[0], 'data', ...parts.slice(1)].join('/');
}

export function badSecretPath(secretPath: string): string {
  return `--vault-secret-path must be <mount>/<path> (KV v2), got "${secretPath}"`;
}
