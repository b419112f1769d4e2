// docs/benchmarks.md is written by the benchmarks themselves: each owns one section between
// `<!-- bench:NAME -->` markers and rewrites only that section, so runs of different benches merge.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, platform, release } from 'node:os';
import { dirname } from 'node:path';
import { loadBenchFlags, type BenchFlags, type BenchProgram } from '../config/bench.js';
import { ConfigError } from '../config/flags.js';
import { ensureDirectory } from '../cli/ensure-directory.js';

export const BENCHMARKS_MD = new URL('../../docs/benchmarks.md', import.meta.url);

const HEADER = `# Benchmarks

Written by \`npm run bench\` (all) or \`npm run bench:<name>\` (one section). Each figure stands beside a
baseline measured in the same run on the same machine, and the goal it is held to. Numbers from a
2-core development VM are noisy; read ratios, not absolute values.
`;

export function machineLine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${platform()} ${release()}, Node ${process.version}`;
}

/**
 * Replaces (or appends) one section of docs/benchmarks.md. `body` is markdown without the markers.
 * `first`: a new section goes before every other section (the summary) instead of at the end.
 */
export function writeBenchmarkSection(name: string, title: string, body: string, file: URL = BENCHMARKS_MD, options: { first?: boolean } = {}): void {
  const path = file.pathname;
  ensureDirectory(dirname(path));
  let text = existsSync(path) ? readFileSync(path, 'utf8') : HEADER;
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const section = `${start}\n## ${title}\n\n_Measured ${new Date().toISOString()} on ${machineLine()}._\n\n${body.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  const firstSection = text.indexOf('<!-- bench:');
  if (i !== -1 && j > i) text = text.slice(0, i) + section + text.slice(j + end.length);
  else if (options.first && firstSection !== -1) text = `${text.slice(0, firstSection)}${section}\n\n${text.slice(firstSection)}`;
  else text = `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(path, text);
}

/**
 * The `main` of a benchmark program: its flags from config/bench.ts (--help prints the usage; a
 * bad flag exits 2 with one line), then `run`; a failure prints one line `PROGRAM: message` and
 * exits 1.
 */
export async function runBenchProgram(program: BenchProgram, argv: readonly string[], run: (flags: BenchFlags) => Promise<void>): Promise<void> {
  let loaded;
  try {
    loaded = loadBenchFlags(program, argv);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`${program}: ${err.message}`);
    process.exitCode = 2;
    return;
  }
  if (loaded.help) {
    console.log(loaded.helpText);
    return;
  }
  try {
    await run(loaded.flags);
  } catch (err) {
    console.error(`${program}: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
