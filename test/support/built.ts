// Makes sure dist/ holds a build at least as new as the sources a process test runs
// (`./bin/ecs-id-mapper` loads dist/). A stale or missing file triggers one
// `tsc -p tsconfig.build.json`, which emits even when files elsewhere have type errors.
// (Other suites that run tsc themselves, e.g. test/lookup-cli.test.ts, do not take this lock.)
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sourcesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourcesUnder(path));
    // What tsconfig.build.json compiles: not tests, contract suites or declarations.
    else if (/\.ts$/.test(entry.name) && !/\.(test|contract|d)\.ts$/.test(entry.name)) out.push(path);
  }
  return out;
}

/** The source files of `folders` whose compiled .js is missing or older. */
export function staleSources(folders: string[]): string[] {
  return folders.flatMap((f) => sourcesUnder(join(REPO_ROOT, f))).filter((src) => {
    const js = join(REPO_ROOT, 'dist', relative(REPO_ROOT, src)).replace(/\.ts$/, '.js');
    return !existsSync(js) || statSync(js).mtimeMs < statSync(src).mtimeMs;
  });
}

/** What a `./bin/ecs-id-mapper` child may load: every folder the CLI imports lazily. */
export const CLI_FOLDERS = ['api', 'cli', 'config', 'reconciler', 'secrets', 'storage', 'tools', 'wire'];

const LOCK = join(tmpdir(), `ecs-id-mapper-build-${createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 12)}.lock`);

/**
 * Builds when stale. Test files run in parallel workers: a build holds a lock directory so no
 * other file's build rewrites dist/ under a child process another file just spawned from it.
 */
export async function ensureBuilt(folders: string[] = CLI_FOLDERS): Promise<void> {
  const end = Date.now() + 280_000;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      // Someone else is building; a lock older than a build can take is left over from a crash.
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > 280_000) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        /* removed meanwhile */
      }
      if (Date.now() > end) throw new Error(`waited too long for another build (lock ${LOCK})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (staleSources(folders).length === 0) return;
    await new Promise<void>((resolve) => {
      execFile(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, timeout: 280_000 }, () => resolve());
    });
    const stale = staleSources(folders);
    if (stale.length > 0) throw new Error(`tsc -p tsconfig.build.json left stale: ${stale.slice(0, 5).map((s) => relative(REPO_ROOT, s)).join(', ')}`);
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}
