// The secrets folder's entry: what the server gets from Vault when --vault-addr is set.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ServerConfig } from '../config/index.js';
import { kvDataPath, VaultError, VaultSecrets, type VaultSecretsDeps } from './vault.js';

export { VaultSecrets, VaultError, kvDataPath, type VaultStatus, type VaultSecretsDeps, type Scheduler } from './vault.js';

export interface LoadedSecrets {
  /** The report token to require: Vault's current report_token, else the configured one. */
  reportToken: string | (() => string | undefined) | undefined;
  /**
   * During a rotation, the old token, accepted too: Vault's report_token_previous, else
   * --report-token-previous. Taken from the same place as the current token: a secret that holds a
   * report_token without a previous one means the rotation is over.
   */
  previousReportToken: string | (() => string | undefined) | undefined;
  /** Vault's current AWS keys, when Vault is configured (SimpleDB signs every request with the latest). */
  awsCredentials?: () => { accessKeyId: string; secretAccessKey: string };
  /**
   * For /health: stays ok while Vault is down (the last good secret is still valid and a Vault
   * outage must not take every replica out of the load balancer); the detail says Vault is failing.
   */
  health?: () => Promise<{ ok: boolean; detail?: string }>;
  vault?: VaultSecrets;
  close(): Promise<void>;
}

/**
 * Without Vault: the configured report token. With Vault: starts VaultSecrets (throws VaultError,
 * one line, when Vault is unreachable or the secret incomplete, before anything else starts).
 * AWS keys in the secret are optional: when the store is SimpleDB without --aws-access-key-id and
 * the secret holds none at start, SimpleDB uses the AWS default credential chain (the task role).
 */
export async function loadSecrets(
  config: ServerConfig,
  deps: { logger?: Logger; registry?: Registry } & Omit<VaultSecretsDeps, 'logger' | 'registry' | 'keepReportToken'> = {},
): Promise<LoadedSecrets> {
  if (!config.vault) return { reportToken: config.reportToken, previousReportToken: config.reportTokenPrevious, close: async () => {} };
  // A secret version without report_token falls back to --report-token; without that flag, the
  // token in force is kept rather than leaving reports open (vault.ts, readSecret).
  const vault = await VaultSecrets.start(config.vault, { ...deps, keepReportToken: config.reportToken === undefined });
  // The config module let --report-token-previous go without --report-token because the secret
  // was to bring the token: without one there either, the routes would be open to anyone, the
  // previous token notwithstanding (as config/ refuses without Vault).
  if (config.reportTokenPrevious !== undefined && config.reportToken === undefined && vault.reportToken === undefined) {
    await vault.close();
    throw new VaultError(
      `vault at ${config.vault.addr.origin}: ${kvDataPath(config.vault.secretPath)} holds no report_token and --report-token is not set: --report-token-previous alone would leave reports open to anyone`,
      'read',
      200,
    );
  }
  const fallbackToken = config.reportToken;
  return {
    vault,
    reportToken: () => vault.reportToken ?? fallbackToken,
    previousReportToken: () => (vault.reportToken !== undefined ? vault.reportTokenPrevious : config.reportTokenPrevious),
    awsCredentials: vault.awsAccessKeyId ? () => vault.awsCredentials() : undefined,
    health: async () => {
      const s = vault.status();
      return s.ok
        ? { ok: true, detail: `vault ok (secret version ${s.secretVersion ?? 'unknown'})` }
        : { ok: true, detail: `vault failing since ${s.failingSince}: ${s.lastError}; serving with the secret read at ${s.secretReadAt}` };
    },
    close: () => vault.close(),
  };
}
