// mkdir -p that always ends. Node's own recursive mkdir (20 through 24) spins forever, at 100 % CPU
// and without a word, when a directory exists but creating a child in it still answers ENOENT, as
// procfs and sysfs do: `--store sqlite:/proc/x/ecs.db` hung the server before it logged anything.
// Here each level is tried at most twice, so such a path ends in that ENOENT.
import * as nodeFs from 'node:fs';
import { dirname } from 'node:path';

/** The one call ensureDirectory makes; tests inject one that answers as procfs does. */
export interface DirectoryFs {
  mkdirSync(path: string): unknown;
}

/** Creates dir and its missing parents. An existing entry of that name counts as done. */
export function ensureDirectory(dir: string, fs: DirectoryFs = nodeFs): void {
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'EEXIST') return;
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
    ensureDirectory(parent, fs);
    try {
      fs.mkdirSync(dir);
    } catch (again) {
      if (errorCode(again) !== 'EEXIST') throw again;
    }
  }
}

const errorCode = (err: unknown) => (err as NodeJS.ErrnoException).code;
