// `ecs-id-mapper backup FILE`: an online copy of the embedded store (storage/sqlite/backup.ts).
// Prints one line; a failure is thrown and printed by main as one line with exit 1.
import type { BackupConfig } from '../config/index.js';
import { backupSqliteStore } from '../storage/sqlite/backup.js';

export async function runBackup(config: BackupConfig, stdout: { write(text: string): unknown } = process.stdout): Promise<number> {
  const done = backupSqliteStore(config.storePath, config.destination);
  const mib = (done.bytes / (1024 * 1024)).toFixed(1);
  stdout.write(`backed up ${done.records} container records (schema ${done.schemaVersion}, ${mib} MiB) to ${done.path} in ${(done.durationMs / 1000).toFixed(1)} s\n`);
  return 0;
}
