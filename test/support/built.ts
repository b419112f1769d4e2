// Makes sure dist/ holds a build at least as new as the sources a process test runs
// (`./bin/ecs-id-mapper` loads dist/). A stale or missing file triggers one
// `tsc -p tsconfig.build.json`, which emits even when files elsewhere have type errors.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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

export function ensureBuilt(folders: string[]): Promise<void> {
  if (staleSources(folders).length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, timeout: 280_000 }, () => {
      const stale = staleSources(folders);
      if (stale.length === 0) resolve();
      else reject(new Error(`tsc -p tsconfig.build.json left stale: ${stale.slice(0, 5).map((s) => relative(REPO_ROOT, s)).join(', ')}`));
    });
  });
}
