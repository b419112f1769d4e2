// `./bin/ecs-id-mapper backup` and `restore` end to end: the built binary copies the store of a
// server that is running and taking reports in this process, and the copy opens as a store with its
// records; restore refuses while that server runs and puts the copy back once it has stopped.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteStore } from '../storage/sqlite/index.js';
import { containerId, hostIdentity, snapshot, snapshotContainer } from '../storage/store.fixtures.js';
import { REPO_ROOT, ensureBuilt } from './support/built.js';
import { startServer, type RunningServer } from './support/live-server.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the binary with a clean ECS_ID_MAPPER_* environment. */
function cli(command: 'backup' | 'restore', args: string[]): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ECS_ID_MAPPER_')));
  return new Promise((resolve, reject) => {
    execFile(join(REPO_ROOT, 'bin/ecs-id-mapper'), [command, ...args], { cwd: REPO_ROOT, env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}
const backup = (args: string[]) => cli('backup', args);
const restore = (args: string[]) => cli('restore', args);

const host = hostIdentity();
async function report(server: RunningServer, seq: number, ids: number[]): Promise<void> {
  const body = snapshot(host, seq, ids.map((i) => snapshotContainer('running', { container_id: containerId(i) })));
  const res = await fetch(`${server.url}/v2/hosts/${host.instance_id}/snapshot`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
}

let dir: string;
let server: RunningServer;
beforeAll(async () => {
  await ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'ecs-id-mapper-backup-cli-'));
  server = await startServer([], `sqlite:${join(dir, 'store.db')}`);
}, 300_000);
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('ecs-id-mapper backup', () => {
  it('copies the store of a running server, which goes on taking reports, and prints one line', async () => {
    await report(server, 1, [1, 2, 3]);
    const destination = join(dir, 'backups', 'monday.db');

    const run = await backup(['--store', `sqlite:${join(dir, 'store.db')}`, destination]);

    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(new RegExp(`^backed up 3 container records \\(schema \\d+, \\d+\\.\\d MiB\\) to ${destination} in \\d+\\.\\d s\\n$`));
    await report(server, 2, [1, 2, 3, 4]);
    const copy = openSqliteStore({ path: destination });
    try {
      expect((await copy.getContainer(containerId(3))).kind).toBe('found');
      expect((await copy.getContainer(containerId(4))).kind).toBe('missing');
    } finally {
      await copy.close();
    }
    expect(readdirSync(join(dir, 'backups'))).toEqual(['monday.db']);
  });

  it('exits 1 with one line when the destination exists, and 2 for usage errors', async () => {
    const store = `sqlite:${join(dir, 'store.db')}`;
    const taken = join(dir, 'taken.db');
    expect((await backup(['--store', store, taken])).code).toBe(0);
    expect(await backup(['--store', store, taken])).toEqual({
      code: 1,
      stdout: '',
      stderr: `ecs-id-mapper backup: "${taken}" already exists (a backup never overwrites a file) (ERR_BACKUP_EXISTS)\n`,
    });
    expect(await backup(['--store', store])).toMatchObject({ code: 2, stderr: 'ecs-id-mapper backup: backup needs the file to write (ecs-id-mapper backup [--store sqlite:PATH] FILE)\n' });
    expect(await backup(['--store', 'simpledb://us-east-1', join(dir, 'x.db')])).toMatchObject({ code: 2, stderr: 'ecs-id-mapper backup: --store: backup works on the embedded SQLite store; SimpleDB keeps its own copies\n' });
    expect(await backup(['--store', 'sqlite::memory:', join(dir, 'x.db')])).toMatchObject({ code: 2, stderr: 'ecs-id-mapper backup: --store: a memory store has no file to back up\n' });
    expect(await backup(['--store', `sqlite:${join(dir, 'absent.db')}`, join(dir, 'x.db')])).toMatchObject({ code: 1, stderr: `ecs-id-mapper backup: no SQLite store at "${join(dir, 'absent.db')}" (ERR_BACKUP_NO_STORE)\n` });
  });
});

describe('ecs-id-mapper restore', () => {
  it('refuses a backup that is the store itself, leaving the store where it is, and says a corrupt backup in one line', async () => {
    const path = join(dir, 'self.db');
    const store = openSqliteStore({ path });
    await store.close();
    expect(await restore(['--store', `sqlite:${path}`, path])).toEqual({
      code: 1,
      stdout: '',
      stderr: `ecs-id-mapper restore: "${path}" is the store itself: give the path of a backup (ERR_BACKUP_FAILED)\n`,
    });
    expect(readdirSync(dir).filter((f) => f.startsWith('self.db'))).toEqual(['self.db']);
    const corrupt = join(dir, 'corrupt.db');
    writeFileSync(corrupt, Buffer.concat([Buffer.from('SQLite format 3\0'), Buffer.alloc(8192, 7)]));
    const run = await restore(['--store', `sqlite:${join(dir, 'other.db')}`, corrupt]);
    expect(run.code).toBe(1);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  });


  it('refuses while the server has the store open, then puts the backup back once it has stopped, and the server starts on it', async () => {
    const store = join(dir, 'store.db');
    const monday = join(dir, 'backups', 'monday.db');
    const refused = await restore(['--store', `sqlite:${store}`, monday]);
    expect(refused).toEqual({ code: 1, stdout: '', stderr: `ecs-id-mapper restore: the store at "${store}" is open in another process: stop the server first (ERR_STORE_IN_USE)\n` });

    await server.stop();
    const run = await restore(['--store', `sqlite:${store}`, monday]);

    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(new RegExp(`^restored 3 container records \\(schema \\d+\\) to ${store} in \\d+\\.\\d s; the store it replaced is ${store}\\.before-restore-\\d{8}T\\d{6}Z\\n$`));
    server = await startServer([], `sqlite:${store}`);
    const answer = async (i: number) => (await fetch(`${server.url}/query/container_id/${containerId(i)}`)).status;
    expect(await answer(3)).toBe(200);
    expect(await answer(4)).toBe(404);
  });
});

