// Checks of hand-written Markdown against the repository: relative links and their anchors, the
// repository paths a doc names, the flags it shows with a command, the env vars and npm scripts it
// names. Each check takes a doc's text and returns one line per problem, so test/docs.test.ts can
// prove on a broken sample that it finds what it is meant to find.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { commands, parseDuration, unknownSettings } from '../../config/index.js';
import { loadBenchFlags, type BenchProgram } from '../../config/bench.js';
import type { FlagSpec } from '../../config/flags.js';
import { collectDefaultMetrics, Registry } from 'prom-client';

/** A doc: its path from the repository root (`docs/api.md`) and its text. */
export interface Doc {
  path: string;
  text: string;
}

/** Fenced code blocks, as lines, and the text outside them. */
function splitFences(text: string): { prose: string; codeLines: string[] } {
  const codeLines: string[] = [];
  let prose = '';
  let inFence = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) {
      inFence = !inFence;
      prose += '\n';
      continue;
    }
    if (inFence) {
      codeLines.push(line);
      prose += '\n';
    } else prose += `${line}\n`;
  }
  return { prose, codeLines };
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered. */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of splitFences(text).prose.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1]
      .toLowerCase()
      .replace(/<[^>]+>/g, '')
      .replace(/[^\p{L}\p{N}\p{M} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  return anchors;
}

/** Every `[text](target)` whose target is a file of the repository (not a URL) must exist, and its `#anchor` must be a heading there. */
export function linkProblems(doc: Doc, root: string): string[] {
  const problems: string[] = [];
  for (const m of splitFences(doc.text).prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1];
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
    const [file, anchor] = target.split('#', 2) as [string, string | undefined];
    const path = file === '' ? doc.path : normalize(join(dirname(doc.path), decodeURIComponent(file)));
    if (file !== '' && !existsSync(join(root, path))) {
      problems.push(`${doc.path}: link to ${target}: no file ${path}`);
      continue;
    }
    const headings = () => headingAnchors(file === '' ? doc.text : readFileSync(join(root, path), 'utf8'));
    if (anchor !== undefined && path.endsWith('.md') && !headings().has(anchor)) {
      problems.push(`${doc.path}: link to ${target}: ${path} has no heading with the anchor #${anchor}`);
    }
  }
  return [...new Set(problems)];
}

/** The repository's top-level folders a doc may name paths under (not build output). */
export function sourceFolders(root: string): string[] {
  return readdirSync(root).filter((d) => !['node_modules', 'dist', '.git'].includes(d) && statSync(join(root, d)).isDirectory());
}

/**
 * Every path a doc names under a top-level folder (`storage/sqlite/sizes.ts`, `charts/ecs/`) must
 * exist. A `.js` path stands for its `.ts` source (`reconciler/main.js` is what node runs).
 */
export function pathProblems(doc: Doc, root: string, folders: string[]): string[] {
  const escaped = folders.map((f) => f.replace(/[.]/g, '\\.'));
  const re = new RegExp(`(?<![\\w./-])((?:${escaped.join('|')})/[\\w./-]*)(?:#([\\w-]+))?`, 'g');
  const problems: string[] = [];
  for (const m of doc.text.matchAll(re)) {
    const path = m[1].replace(/[.,:;]+$/, '');
    const anchor = m[2];
    if (anchor !== undefined && path.endsWith('.md') && existsSync(join(root, path)) && !headingAnchors(readFileSync(join(root, path), 'utf8')).has(anchor)) {
      problems.push(`${doc.path}: names ${path}#${anchor}, and ${path} has no heading with that anchor`);
    }
    if (existsSync(join(root, path))) continue;
    if (path.endsWith('.js') && existsSync(join(root, `${path.slice(0, -3)}.ts`))) continue;
    problems.push(`${doc.path}: names ${path}, which does not exist`);
  }
  return [...new Set(problems)];
}

/**
 * A section named in prose, `(docs/operations.md, Rotate secrets)` or `(operations.md, host-stale)`,
 * must be a heading of that doc: its anchor, or the start of its text.
 */
export function sectionProblems(doc: Doc, root: string): string[] {
  const problems: string[] = [];
  for (const m of splitFences(doc.text).prose.matchAll(/\(((?:docs\/)?[\w-]+\.md), "?([^")]+?)"?\)/g)) {
    const [, file, section] = m;
    const path = [normalize(join(dirname(doc.path), file)), file].find((p) => existsSync(join(root, p)));
    if (path === undefined) {
      problems.push(`${doc.path}: (${file}, ${section}): no file ${file}`);
      continue;
    }
    const text = readFileSync(join(root, path), 'utf8');
    const headings = [...splitFences(text).prose.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)].map((h) => h[1].toLowerCase());
    if (!headingAnchors(text).has(section) && !headings.some((h) => h.startsWith(section.toLowerCase()))) {
      problems.push(`${doc.path}: (${file}, ${section}): ${path} has no such section`);
    }
  }
  return problems;
}

const BENCH_PROGRAMS: BenchProgram[] = ['bench', 'bench:api', 'bench:capacity', 'bench:fleet', 'bench:growth', 'bench:reconciler', 'bench:simpledb'];

/** What a flag may be checked against. */
export interface FlagCatalogue {
  /** Each command's flags, `help` included. */
  command: Map<string, Set<string>>;
  /** Each benchmark program's flags (`npm run bench:fleet -- --soak 30m`), `help` included. */
  bench: Map<string, Set<string>>;
  /** Every flag of a command or a benchmark, and Node's and V8's options (the launcher's V8 flags). */
  any: Set<string>;
}

export function flagCatalogue(): FlagCatalogue {
  const command = new Map<string, Set<string>>();
  for (const c of Object.values(commands)) command.set(c.name, new Set(['help', ...(c.flags as FlagSpec[]).map((f) => f.name)]));
  const bench = new Map<string, Set<string>>();
  for (const p of BENCH_PROGRAMS) {
    const help = loadBenchFlags(p, ['--help']).helpText;
    bench.set(p, new Set(['help', ...[...help.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1])]));
  }
  const any = new Set<string>([...command.values(), ...bench.values()].flatMap((s) => [...s]));
  for (const flag of process.allowedNodeEnvironmentFlags) if (flag.startsWith('--')) any.add(flag.slice(2));
  const v8 = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
  for (const m of v8.matchAll(/^\s+--([a-z0-9_-]+)/gm)) any.add(m[1].replace(/_/g, '-'));
  return { command, bench, any };
}

/** Programs other than ours whose flags a doc shows on their own command line (`docker run --rm`). */
const OTHER_PROGRAMS = /^(?:\$\s+)?(?:sudo\s+)?(?:docker|dockerd|aws|vault|curl|git|promtool|prometheus|node|npm\s+(?!run\b)\S+)\b/;

/**
 * The flags in one piece of a doc (an inline code span, a command line of a code block, or prose).
 * After `ecs-id-mapper <command>` (or a span that starts with a command's name) every flag must be one
 * of that command's; after `npm run <benchmark> --`, one of that benchmark's. Elsewhere a flag must
 * be one of ours or Node's, unless the piece is another program's command line.
 */
function flagProblemsIn(piece: string, where: string, flags: FlagCatalogue, prose = false): string[] {
  const problems: string[] = [];
  const known = (set: Set<string>, flag: string) => set.has(flag) || (flag.startsWith('no-') && set.has(flag.slice(3)));
  const flagsIn = (text: string) => [...text.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => m[1]);
  const ours = prose ? null : /(?:^|[\s/(])ecs-id-mapper\s+([a-z-]+)\b|^([a-z-]+)(?=\s)/.exec(piece.trim());
  const commandName = ours ? (ours[1] ?? ours[2]) : undefined;
  if (commandName !== undefined && flags.command.has(commandName)) {
    const after = piece.trim().slice(ours!.index + ours![0].length);
    for (const f of flagsIn(after)) if (!known(flags.command.get(commandName)!, f)) problems.push(`${where}: --${f} is not a flag of ecs-id-mapper ${commandName}`);
    return problems;
  }
  const bench = prose ? null : /npm run (bench(?::[a-z]+)?)\b/.exec(piece);
  if (bench && flags.bench.has(bench[1])) {
    for (const f of flagsIn(piece.slice(bench.index + bench[0].length))) if (!known(flags.bench.get(bench[1])!, f)) problems.push(`${where}: --${f} is not a flag of npm run ${bench[1]}`);
    return problems;
  }
  if (!prose && OTHER_PROGRAMS.test(piece.trim())) return problems;
  for (const f of flagsIn(piece)) if (!known(flags.any, f)) problems.push(`${where}: --${f} is no flag of any command, benchmark or of Node`);
  return problems;
}

/** Flags shown in a doc: see flagProblemsIn. */
export function flagProblems(doc: Doc, flags: FlagCatalogue): string[] {
  const { prose, codeLines } = splitFences(doc.text);
  const problems: string[] = [];
  // Code blocks: one command line at a time, comments dropped and `\`-continued lines joined.
  const lines = codeLines.map((l) => l.replace(/(^|\s)#.*$/, '').trimEnd()).join('\n').replace(/\\\n/g, ' ').split('\n');
  for (const line of lines) problems.push(...flagProblemsIn(line, `${doc.path} (code block)`, flags));
  const spans = [...prose.matchAll(/(`+)([\s\S]+?)\1/g)].map((m) => m[2].replace(/\s+/g, ' '));
  for (const span of spans) problems.push(...flagProblemsIn(span, `${doc.path}: \`${span}\``, flags));
  const outside = prose.replace(/(`+)[\s\S]+?\1/g, ' ');
  problems.push(...flagProblemsIn(outside, doc.path, flags, true));
  return [...new Set(problems)];
}

/** Every `ECS_ID_MAPPER_*` variable a doc names is some command's setting. */
export function envProblems(doc: Doc): string[] {
  const names = new Set([...doc.text.matchAll(/\bECS_ID_MAPPER_[A-Z0-9_]*[A-Z0-9]\b/g)].map((m) => m[0]));
  return [...names].flatMap((name) => (unknownSettings({ [name]: 'x' }).length > 0 ? [`${doc.path}: ${name} is not a setting of any command`] : []));
}

/** Every `npm run <script>` a doc names is a script of package.json. */
export function npmScriptProblems(doc: Doc, scripts: Set<string>): string[] {
  const names = new Set([...doc.text.matchAll(/npm run ([a-z][a-z0-9:-]*[a-z0-9])/g)].map((m) => m[1]));
  return [...names].filter((s) => !scripts.has(s)).map((s) => `${doc.path}: npm run ${s}: no such script in package.json`);
}

/**
 * The metric families a doc may name: those of docs/metrics.md's generated tables (which
 * test/metrics-docs.test.ts holds to the live /metrics), and prom-client's default process metrics
 * under the server's and the reconciler's prefixes.
 */
export function metricFamilies(metricsDoc: string): Set<string> {
  const names = new Set([...metricsDoc.matchAll(/^\| `(ecs_id_mapper_[a-z0-9_]+)` \|/gm)].map((m) => m[1]));
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const m of registry.getMetricsAsArray()) for (const prefix of ['ecs_id_mapper_', 'ecs_id_mapper_reconciler_']) names.add(prefix + m.name);
  return names;
}

/** The original project's SimpleDB domains and a store prefix: `ecs_id_mapper_` names that are no metrics. */
const NOT_METRICS = /^ecs_id_mapper_(hash|events|v2|containers_\d+|transitions|hosts)$/;

/** Every metric a doc names (`ecs_id_mapper_..._total`, a histogram's `_count`) is a family of metricFamilies(). */
export function metricProblems(doc: Doc, families: Set<string>): string[] {
  const problems = new Set<string>();
  for (const m of doc.text.matchAll(/\becs_id_mapper_[a-z0-9_]*[a-z0-9](?![a-z0-9_*]|\.\.)/g)) {
    const name = m[0];
    if (NOT_METRICS.test(name) || families.has(name) || families.has(name.replace(/_(bucket|sum|count)$/, ''))) continue;
    problems.add(`${doc.path}: ${name} is not a metric the server or the reconciler exposes (docs/metrics.md)`);
  }
  return [...problems];
}

const UNIT: Record<string, number> = {
  ms: 1, s: 1000, second: 1000, seconds: 1000, m: 60_000, minute: 60_000, minutes: 60_000, h: 3_600_000, hour: 3_600_000, hours: 3_600_000, day: 86_400_000, days: 86_400_000,
  KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3,
};

/**
 * A default a doc states beside a flag, `` `--retention` (7 days by default) `` or
 * `` `--cadvisor-port` (default 8080) ``, is the default config/ declares for it (for some command
 * that has the flag). Only a number with a unit, or one after "default", is read as a default.
 */
export function defaultProblems(doc: Doc): string[] {
  const specs = new Map<string, FlagSpec[]>();
  for (const c of Object.values(commands)) for (const f of c.flags as FlagSpec[]) specs.set(f.name, [...(specs.get(f.name) ?? []), f]);
  // A flag whose default is decided elsewhere (--sqlite-cache-bytes) states it in its help: `(default 8388608, ...`.
  const declared = (f: FlagSpec) => f.default ?? /\(default (\d+)\b/.exec(f.help)?.[1];
  const value = (f: FlagSpec) => {
    const d = declared(f);
    return d === undefined ? undefined : f.kind === 'duration' ? parseDuration(d) : Number(d);
  };
  const problems: string[] = [];
  const re = /`--([a-z-]+)`\s*\((default:? |by default: )?([0-9][0-9,]*(?:\.[0-9]+)?)(?:\s*(ms|s|m|h|seconds?|minutes?|hours?|days?|KiB|MiB|GiB)\b)?/g;
  for (const m of splitFences(doc.text).prose.matchAll(re)) {
    const [, name, saysDefault, number, unit] = m;
    if (unit === undefined && saysDefault === undefined) continue;
    const candidates = specs.get(name);
    if (!candidates) continue; // flagProblems names an unknown flag
    const stated = Number(number.replace(/,/g, '')) * (unit ? UNIT[unit] : 1);
    if (!candidates.some((f) => value(f) === stated)) {
      problems.push(`${doc.path}: --${name} (${m[0].slice(m[0].indexOf('(') + 1)}): config/ declares ${candidates.map((f) => declared(f) ?? 'no default').join(' or ')}`);
    }
  }
  return problems;
}

/** Every alert a doc names (`EcsIdMapperHostStale`) is one of the rules in charts/prometheus/rules/. */
export function alertProblems(doc: Doc, alerts: Set<string>): string[] {
  const named = new Set([...doc.text.matchAll(/\bEcsIdMapper[A-Z][A-Za-z0-9]*/g)].map((m) => m[0]));
  return [...named].filter((a) => !alerts.has(a)).map((a) => `${doc.path}: ${a} is not an alert of charts/prometheus/rules/`);
}
