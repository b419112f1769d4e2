// The one executable: `ecs-id-mapper <command> [flags]`. Parses config, then loads only the
// command it runs (lazy imports keep the reconciler's memory small).
import { ConfigError, loadCommand, topLevelHelp, type CommandName } from '../config/index.js';
import { applyV8Flags } from './v8-flags.js';
import { packageVersion } from './package-version.js';

type Runner = (config: never) => Promise<number | void>;

const runners: Record<CommandName, () => Promise<Runner>> = {
  server: async () => (await import('../api/main.js')).runServer as Runner,
  reconciler: async () => (await import('../reconciler/main.js')).runReconciler as Runner,
  'simulate-host': async () => (await import('../tools/simulate-host/main.js')).runSimulateHost as Runner,
  'simpledb-local': async () => (await import('../storage/simpledb/local/main.js')).runSimpleDbLocal as Runner,
  lookup: async () => (await import('./lookup.js')).runLookup as Runner,
  backup: async () => (await import('./backup.js')).runBackup as Runner,
  restore: async () => (await import('./backup.js')).runRestore as Runner,
  demo: async () => (await import('../tools/demo/run.js')).runDemo as Runner,
};

export interface MainOptions {
  /**
   * Apply the command's V8 settings (cli/v8-flags.ts) before loading it. Default true; false
   * only for the benchmark's "Node defaults" baseline.
   */
  v8Flags?: boolean;
}

/** One line: a message that spans lines (SQLite's quick_check, an echoed value) is joined. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** Commands that run until stopped: a closed output stops them the way SIGTERM does. */
const LONG_RUNNING: ReadonlySet<CommandName> = new Set(['server', 'reconciler', 'simulate-host', 'simpledb-local', 'demo']);

/**
 * A reader that closed our output is no error of ours, but what it means depends on the command.
 * `lookup ... | head -1` has said what it had to: it ends quietly, instead of dying on an
 * unhandled EPIPE with a stack trace. A daemon whose log collector went away stops as on SIGTERM
 * (its state dir lock released, its store closed, its Vault token revoked) and exits 1, so that a
 * supervisor sees a failure; before, it exited 0 on the spot and skipped all of that.
 */
let outputGuarded = false;
let outputClosed = false;
let daemonRunning = false;
function quietOnClosedOutput(): void {
  if (outputGuarded) return;
  outputGuarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      if (!daemonRunning) process.exit(process.exitCode ?? 0);
      if (outputClosed) return;
      outputClosed = true;
      if (stream === process.stdout) process.stderr.write('ecs-id-mapper: standard output was closed; stopping\n');
      process.kill(process.pid, 'SIGTERM');
    });
  }
}

export async function main(argv: string[], options: MainOptions = {}): Promise<void> {
  quietOnClosedOutput();
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-V' || command === 'version') {
    console.log(`ecs-id-mapper ${packageVersion()} (node ${process.version})`);
    return;
  }
  // `help <command>` is `<command> --help`.
  if (command === 'help' && rest.length > 0) return main([rest[0], '--help'], options);
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(topLevelHelp());
    if (!command) process.exitCode = 2;
    return;
  }
  let loaded;
  try {
    loaded = loadCommand(command, rest, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`ecs-id-mapper ${command}: ${oneLine(err.message)}`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
  if (loaded.kind === 'help') {
    console.log(loaded.text);
    return;
  }
  for (const warning of loaded.warnings) console.error(`ecs-id-mapper ${command}: warning: ${warning}`);
  if (options.v8Flags !== false) applyV8Flags(loaded.command);
  const run = await runners[loaded.command]();
  daemonRunning = LONG_RUNNING.has(loaded.command);
  try {
    const code = await run(loaded.config as never);
    if (typeof code === 'number') process.exitCode = code;
    if (outputClosed) process.exitCode = 1;
  } catch (err) {
    // A command that fails at start (store unreachable, Vault down, port taken) exits with one line.
    const e = err as Error & { code?: string };
    console.error(`ecs-id-mapper ${command}: ${oneLine(e.message)}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`);
    process.exitCode = 1;
  }
}
