// The flag parser behind every command. This folder is the only place that reads process.argv and
// process.env: commands declare their flags here and receive a typed, validated config object.
//
// Contract: every flag `--some-flag` can also be set with `ECS_ID_MAPPER_SOME_FLAG`; the flag wins.
// Repeatable flags read their env var as a comma-separated list. A bad value throws ConfigError whose
// message is one readable line, which the CLI prints before exiting non-zero.

export class ConfigError extends Error {
  readonly name = 'ConfigError';
  readonly code = 'ERR_CONFIG';
  constructor(message: string) {
    super(message);
  }
}

export type FlagKind = 'string' | 'integer' | 'duration' | 'boolean' | 'list';

export interface FlagSpec {
  /** Flag name without dashes, kebab-case: `report-token`. */
  name: string;
  kind: FlagKind;
  help: string;
  /** Default as the user would type it (parsed like user input), or undefined when optional. */
  default?: string;
  required?: boolean;
  /** For integers and durations: inclusive bounds (durations in milliseconds). */
  min?: number;
  max?: number;
  /** Secret values are masked in --help defaults and error messages. */
  secret?: boolean;
  /** Lists only: where the env var's value is split into items (default: every comma). */
  envSeparator?: RegExp;
}

export type FlagValue = string | number | boolean | string[] | undefined;
export type ParsedFlags = Record<string, FlagValue>;

/** Every flag's env var starts with this. */
export const ENV_PREFIX = 'ECS_ID_MAPPER_';

export function envName(flag: string): string {
  return `${ENV_PREFIX}${flag.toUpperCase().replace(/-/g, '_')}`;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest delay a Node.js timer keeps (2^31 - 1 ms); the max of every duration flag that sets one. */
export const TIMER_MAX_MS = 2 ** 31 - 1;

/** A century: the most a duration that sets no timer may be (a retention), so dates stay in range. */
export const CENTURY_MS = 100 * 365 * 24 * 3_600_000;

/** Parses `250ms`, `10s`, `5m`, `1h` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new ConfigError(`not a duration: "${text}" (use 250ms, 10s, 5m, 1h or a number of seconds)`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']);
}

function convert(spec: FlagSpec, raw: string, origin: string): FlagValue {
  const shown = spec.secret ? '***' : raw;
  switch (spec.kind) {
    case 'string':
    case 'list':
      return raw;
    case 'boolean': {
      const v = raw.toLowerCase();
      if (['1', 'true', 'yes', 'on', ''].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(`${origin}: expected true or false, got "${shown}"`);
    }
    case 'integer': {
      if (!/^-?\d+$/.test(raw)) throw new ConfigError(`${origin}: expected an integer, got "${shown}"`);
      const n = Number(raw);
      if (spec.min !== undefined && n < spec.min) throw new ConfigError(`${origin}: must be at least ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) throw new ConfigError(`${origin}: must be at most ${spec.max}, got ${n}`);
      return n;
    }
    case 'duration': {
      let ms: number;
      try {
        ms = parseDuration(raw);
      } catch (e) {
        throw new ConfigError(`${origin}: ${(e as Error).message}`);
      }
      if (spec.min !== undefined && ms < spec.min) throw new ConfigError(`${origin}: must be at least ${spec.min}ms`);
      if (spec.max !== undefined && ms > spec.max) {
        if (spec.max === TIMER_MAX_MS) throw new ConfigError(`${origin}: must be at most 596h (24.8 days): Node.js runs a longer timer at once`);
        throw new ConfigError(`${origin}: must be at most ${spec.max >= 3_600_000 ? `${Math.floor(spec.max / 3_600_000)}h` : `${spec.max}ms`}`);
      }
      return ms;
    }
  }
}

export interface ParseResult {
  flags: ParsedFlags;
  positionals: string[];
  help: boolean;
  /** The flags whose value came from their env var (not the command line, not a default). */
  fromEnv: Set<string>;
}

/**
 * Parses argv (without the command name) against the specs, then fills the gaps from env, then
 * from defaults. Accepts `--flag value`, `--flag=value`, `--no-flag` for booleans, and `--help`/`-h`.
 */
export function parseFlags(specs: FlagSpec[], argv: string[], env: Record<string, string | undefined>): ParseResult {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const fromArgv = new Map<string, string[]>();
  const positionals: string[] = [];
  let help = false;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg.length > 1) throw new ConfigError(`unknown option "${arg}" (see --help)`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    let spec = byName.get(name);
    if (!spec && name.startsWith('no-') && byName.get(name.slice(3))?.kind === 'boolean' && value === undefined) {
      name = name.slice(3);
      spec = byName.get(name);
      value = 'false';
    }
    if (!spec) {
      const near = closest(name, specs.map((sp) => sp.name));
      throw new ConfigError(`unknown flag "--${name}" (${near ? `did you mean --${near}? ` : ''}see --help)`);
    }
    if (value === undefined) {
      if (spec.kind === 'boolean') {
        const next = argv[i + 1];
        value = next !== undefined && /^(true|false)$/i.test(next) ? argv[++i] : 'true';
      } else {
        if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new ConfigError(`flag --${name} needs a value`);
        value = argv[++i];
      }
    }
    const list = fromArgv.get(name) ?? [];
    list.push(value);
    fromArgv.set(name, list);
  }

  const flags: ParsedFlags = {};
  const fromEnvNames = new Set<string>();
  for (const spec of specs) {
    const given = fromArgv.get(spec.name);
    if (given) {
      if (spec.kind === 'list') {
        flags[spec.name] = given.map((v) => convert(spec, v, `--${spec.name}`) as string);
      } else {
        if (given.length > 1) throw new ConfigError(`flag --${spec.name} given more than once`);
        flags[spec.name] = convert(spec, given[0], `--${spec.name}`);
      }
      continue;
    }
    const fromEnv = env[envName(spec.name)];
    if (fromEnv !== undefined && fromEnv !== '') {
      flags[spec.name] =
        spec.kind === 'list'
          ? fromEnv.split(spec.envSeparator ?? ',').map((v) => v.trim()).filter(Boolean)
          : convert(spec, fromEnv, envName(spec.name));
      fromEnvNames.add(spec.name);
      continue;
    }
    if (spec.default !== undefined) {
      flags[spec.name] = spec.kind === 'list' ? [] : convert(spec, spec.default, `default of --${spec.name}`);
      continue;
    }
    if (spec.kind === 'list') flags[spec.name] = [];
    else if (spec.required && !help) throw new ConfigError(`missing required flag --${spec.name} (or ${envName(spec.name)})`);
  }
  return { flags, positionals, help, fromEnv: fromEnvNames };
}

/**
 * The checks made after parsing (a store URL, a link template, two flags together) name the flag
 * they refuse: `--store: ...`. When that value came from the environment, the operator set no
 * such flag and must be told which variable to fix: the leading flag name becomes the env var's.
 */
export function nameEnvSource(err: ConfigError, fromEnv: Set<string>): ConfigError {
  const m = /^--([a-z0-9-]+)(?=[: ]|$)/.exec(err.message);
  if (!m || !fromEnv.has(m[1])) return err;
  return new ConfigError(envName(m[1]) + err.message.slice(m[0].length));
}

/** Renders the --help text for one command. */
export function renderHelp(command: string, summary: string, usage: string, specs: FlagSpec[]): string {
  const lines = [`Usage: ecs-id-mapper ${command} ${usage}`.trimEnd(), '', summary, '', 'Flags (each also read from the env var shown; the flag wins):'];
  for (const s of specs) {
    const def = s.default !== undefined && s.default !== '' ? ` (default: ${s.secret ? '***' : s.default})` : s.required ? ' (required)' : '';
    lines.push(`  --${s.name}${s.kind === 'boolean' ? '' : ` <${s.kind === 'list' ? 'value, repeatable' : s.kind}>`}`);
    lines.push(`      ${s.help}${def}`);
    lines.push(`      env: ${envName(s.name)}`);
  }
  lines.push('  --help, -h', '      Show this help.');
  return lines.join('\n');
}

/**
 * The candidate at the smallest edit distance from `word`, if that is at most a third of the word
 * (rounded up) and at most 3: `prot` → `port`, while `foo` suggests nothing.
 */
export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(3, Math.ceil(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/** Levenshtein distance (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length];
}
