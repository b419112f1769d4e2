// `ecs-id-mapper backup FILE` and `restore BACKUP`: the embedded store's file, copied while the
// server runs, and put back while it is stopped (storage/sqlite/backup.ts). Each prints one line;
// a failure is thrown and printed by main as one line with exit 1.
import type { BackupConfig, RestoreConfig } from '../config/index.js';
import { backupSqliteStore, restoreSqliteStore } from '../storage/sqlite/backup.js';

type Output = { write(text: string): unknown };

export async function runBackup(config: BackupConfig, stdout: Output = process.stdout): Promise<number> {
  const done = backupSqliteStore(config.storePath, config.destination);
  const mib = (done.bytes / (1024 * 1024)).toFixed(1);
  stdout.write(`backed up ${done.records} container records (schema ${done.schemaVersion}, ${mib} MiB) to ${done.path} in ${(done.durationMs / 1000).toFixed(1)} s\n`);
  return 0;
}

export async function runRestore(config: RestoreConfig, stdout: Output = process.stdout): Promise<number> {
  const done = restoreSqliteStore(config.storePath, config.backup);
  const replaced = done.replacedKeptAs ? `; the store it replaced is ${done.replacedKeptAs}` : '';
  stdout.write(`restored ${done.records} container records (schema ${done.schemaVersion}) to ${done.path} in ${(done.durationMs / 1000).toFixed(1)} s${replaced}\n`);
  return 0;
}
