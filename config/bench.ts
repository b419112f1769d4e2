// The flags of the benchmark programs (`npm run bench…`), parsed here like every command's flags so
// that a mistyped one is an error with one readable line, not a silently different run (`--ful`
// used to run quick mode). Benchmarks are development tools: their flags read no environment.
import { ConfigError, parseFlags, type FlagSpec } from './flags.js';

export const BENCH_NAMES = ['api', 'reconciler', 'simpledb', 'fleet', 'growth'] as const;
export type BenchName = (typeof BENCH_NAMES)[number];

export type BenchProgram = 'bench' | 'bench:api' | 'bench:capacity' | 'bench:fleet' | 'bench:growth' | 'bench:reconciler' | 'bench:simpledb';

export interface BenchFlags {
  /** The issues' sizes (long) rather than quick mode. */
  full: boolean;
  /** `bench`: run only these. */
  only?: BenchName[];
  /** `bench:fleet`: soak mode for this long (ms). */
  soakMs?: number;
  /** `bench:fleet`: one backend only. */
  backend?: 'sqlite' | 'simpledb';
  /** `bench:fleet` soak: reports per second across the fleet. */
  rate?: number;
}

const FULL: FlagSpec = { name: 'full', kind: 'boolean', default: 'false', help: "The issues' sizes: 2,000 × 30 hosts, 1 M records, longer rounds (long)." };
const QUICK: FlagSpec = { name: 'quick', kind: 'boolean', default: 'false', help: 'Sizes that finish within 5 minutes on a 2-core machine.' };

interface ProgramSpec {
  summary: string;
  flags: FlagSpec[];
  /** Quick mode unless --full, or (bench:api) full unless --quick. */
  defaultFull: boolean;
}

const PROGRAMS: Record<BenchProgram, ProgramSpec> = {
  bench: {
    summary: 'Runs every benchmark (quick mode unless --full), rewriting each section of docs/benchmarks.md and the summary of every goal.',
    flags: [QUICK, FULL, { name: 'only', kind: 'list', help: `Run only these benchmarks, comma-separated or repeated: ${BENCH_NAMES.join(', ')}.` }],
    defaultFull: false,
  },
  'bench:api': {
    summary: 'Lookup throughput and p99 at half rate against a bare Fastify route (full length unless --quick).',
    flags: [QUICK, FULL],
    defaultFull: true,
  },
  'bench:capacity': { summary: 'How many containers the reconciler tracks inside a 64 MiB memory limit (not part of `bench`; about 5 minutes).', flags: [], defaultFull: false },
  'bench:fleet': {
    summary: 'Simulated hosts reporting into one server, on SQLite and on the local SimpleDB endpoint; --soak runs the paced phase that long and reports server RSS over time.',
    flags: [
      FULL,
      { name: 'soak', kind: 'duration', min: 1000, help: 'Soak mode: the paced phase this long (e.g. 30m), server RSS over time (SQLite unless --backend simpledb).' },
      { name: 'backend', kind: 'string', help: 'Run one backend only: sqlite or simpledb.' },
      { name: 'rate', kind: 'string', help: 'Soak mode: reports per second across the fleet (default: every host about every 10 s).' },
    ],
    defaultFull: false,
  },
  'bench:growth': { summary: 'Lookup p99 with many records against few; snapshot cost per container from 10 to 1,000 containers per host.', flags: [FULL], defaultFull: false },
  'bench:reconciler': { summary: 'Reconcile pass CPU, daemon RSS over a simulated hour, container start → queryable.', flags: [FULL], defaultFull: false },
  'bench:simpledb': { summary: 'SimpleDB requests per transition against the original design; lookups answered from the read cache.', flags: [], defaultFull: false },
};

export interface LoadedBenchFlags {
  help: boolean;
  helpText: string;
  flags: BenchFlags;
}

/** Parses a benchmark program's argv (without node and the script). Throws ConfigError. */
export function loadBenchFlags(program: BenchProgram, argv: readonly string[]): LoadedBenchFlags {
  const spec = PROGRAMS[program];
  const { flags, positionals, help } = parseFlags(spec.flags, [...argv], {});
  const helpText = benchHelp(program, spec);
  if (help) return { help, helpText, flags: { full: spec.defaultFull } };
  if (positionals.length > 0) throw new ConfigError(`${program}: unexpected argument "${positionals[0]}" (see --help)`);
  if (flags.quick === true && flags.full === true) throw new ConfigError(`${program}: --quick and --full contradict each other`);
  const out: BenchFlags = { full: flags.full === true || (spec.defaultFull && flags.quick !== true) };
  if (Array.isArray(flags.only) && flags.only.length > 0) {
    const names = flags.only.flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    const unknown = names.find((n) => !(BENCH_NAMES as readonly string[]).includes(n));
    if (unknown !== undefined) throw new ConfigError(`--only: unknown benchmark "${unknown}" (known: ${BENCH_NAMES.join(', ')})`);
    out.only = names as BenchName[];
  }
  if (typeof flags.soak === 'number') out.soakMs = flags.soak;
  if (typeof flags.backend === 'string') {
    if (flags.backend !== 'sqlite' && flags.backend !== 'simpledb') throw new ConfigError(`--backend: expected sqlite or simpledb, got "${flags.backend}"`);
    out.backend = flags.backend;
  }
  if (typeof flags.rate === 'string') {
    const rate = Number(flags.rate);
    if (!(rate > 0) || !Number.isFinite(rate)) throw new ConfigError(`--rate: expected reports per second (a positive number), got "${flags.rate}"`);
    if (out.soakMs === undefined) throw new ConfigError('--rate applies to soak mode only (add --soak 30m)');
    out.rate = rate;
  }
  return { help, helpText, flags: out };
}

function benchHelp(program: BenchProgram, spec: ProgramSpec): string {
  const lines = [`Usage: npm run ${program}${spec.flags.length > 0 ? ' -- [flags]' : ''}`, '', spec.summary];
  if (spec.flags.length > 0) lines.push('', 'Flags:');
  for (const f of spec.flags) {
    lines.push(`  --${f.name}${f.kind === 'boolean' ? '' : ` <${f.kind === 'list' ? 'value, repeatable' : f.kind}>`}`);
    lines.push(`      ${f.help}`);
  }
  return lines.join('\n');
}

