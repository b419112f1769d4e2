// docs/benchmarks.md is written by the benchmarks themselves: each owns one section between
// `<!-- bench:NAME -->` markers and rewrites only that section, so runs of different benches merge.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem, platform, release } from 'node:os';
import { dirname } from 'node:path';

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
  mkdirSync(dirname(path), { recursive: true });
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
