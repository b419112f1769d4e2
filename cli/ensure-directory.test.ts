import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensureDirectory, type DirectoryFs } from './ensure-directory.js';

const enoent = (path: string) => Object.assign(new Error(`ENOENT: no such file or directory, mkdir '${path}'`), { code: 'ENOENT' });
const eexist = (path: string) => Object.assign(new Error(`EEXIST: file already exists, mkdir '${path}'`), { code: 'EEXIST' });

/** Answers as procfs does: /proc exists, and any child of it "does not exist" when created. */
function procLikeFs(): DirectoryFs & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    mkdirSync(path: string) {
      calls.push(path);
      if (path === '/' || path === '/proc') throw eexist(path);
      throw enoent(path);
    },
  };
}

describe('ensureDirectory', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ensure-dir-'));
    dirs.push(dir);
    return dir;
  };

  it('creates a directory and its missing parents', () => {
    const target = join(tempDir(), 'a', 'b', 'c');
    ensureDirectory(target);
    expect(statSync(target).isDirectory()).toBe(true);
  });

  it('leaves an existing directory as it is', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'kept'), 'x');
    ensureDirectory(dir);
    expect(statSync(join(dir, 'kept')).isFile()).toBe(true);
  });

  it('ends with ENOENT where an existing parent refuses children, trying each level at most twice', () => {
    const fs = procLikeFs();
    expect(() => ensureDirectory('/proc/nope/deeper', fs)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(fs.calls).toEqual(['/proc/nope/deeper', '/proc/nope', '/proc', '/proc/nope']);
  });

  it('passes other errors through without walking up', () => {
    const fs: DirectoryFs = {
      mkdirSync(path: string) {
        throw Object.assign(new Error(`EACCES: permission denied, mkdir '${path}'`), { code: 'EACCES' });
      },
    };
    expect(() => ensureDirectory('/srv/data', fs)).toThrow(expect.objectContaining({ code: 'EACCES' }));
  });

  it('ends under the real /proc, where Node\'s recursive mkdir never returns', { skip: process.platform !== 'linux' }, () => {
    expect(() => ensureDirectory('/proc/ecs-id-mapper-nope/store')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
