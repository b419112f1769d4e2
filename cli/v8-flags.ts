// V8 settings the launcher applies to one command, before that command's modules load: the one
// place they are set (docs/benchmarks.md, reconciler section, measures each one and what it costs).
//
// They are set at run time with v8.setFlagsFromString rather than on the node command line
// because the executable is `node bin/ecs-id-mapper <command>` (the Docker image's entrypoint and
// how tests and the fleet simulator spawn it): a command-line flag would need a second node
// process, which costs more memory than any flag saves. Only flags V8 reads while it runs work
// this way; heap limits fixed at start (--max-semi-space-size, --max-old-space-size) and thread
// pools (--v8-pool-size, --single-threaded-gc) do not, which is why none of those is here.
// A flag already given on the node command line is left as the operator set it.
import { setFlagsFromString } from 'node:v8';
import type { CommandName } from '../config/index.js';

export const V8_FLAGS: Partial<Record<CommandName, readonly string[]>> = {
  // The reconciler lives under a 64 MiB container limit (the original agent's --memory=64m):
  // - the young generation stays at its initial 1 MiB semi-space instead of growing to 16 MiB
  //   during start-up (module loading allocates fast) and keeping those pages resident;
  // - WebAssembly stays on V8's baseline compiler (Liftoff): undici's HTTP parser is llhttp
  //   compiled to WebAssembly, and when its hot functions tier up, the optimizing compiler takes
  //   about 20 MiB for well under a second at start-up, enough to get the daemon OOM-killed under
  //   a 64 MiB limit. (V8 lists the flag "for testing": it only stops the tier-up; WebAssembly
  //   still works, unlike with --jitless or --lite-mode, which remove it and so break undici.)
  // - the old generation grows in smaller steps, so less garbage stays committed between full
  //   collections (about 16 MiB committed for 10 MiB live, instead of up to 32; the daemon's own
  //   heap ceiling, reconciler/heap-ceiling.ts, collects sooner still);
  // - JavaScript stays on the interpreter and the baseline compiler (no TurboFan): the optimizing
  //   compiler's code and its compile-time memory were about 5 MiB of the daemon's peak RSS, and a
  //   pass is short, mostly JSON parsing (native) and small loops, so it costs about 0.3 ms of CPU.
  //   --no-opt is one of the flags V8 reads each time it decides to optimize, so it works at run time.
  // What each one costs in CPU per pass: docs/benchmarks.md, reconciler section.
  reconciler: ['--semi-space-growth-factor=1', '--liftoff-only', '--optimize-for-size', '--no-opt'],
};

const flagName = (flag: string) => flag.replace(/^--(no-)?/, '').split('=')[0].replace(/_/g, '-');

/** The flags of V8_FLAGS[command] not already on the node command line (`execArgv`). */
export function v8FlagsFor(command: CommandName, execArgv: readonly string[] = process.execArgv): string[] {
  const given = new Set(execArgv.filter((a) => a.startsWith('--')).map(flagName));
  return (V8_FLAGS[command] ?? []).filter((flag) => !given.has(flagName(flag)));
}

/** Applies V8_FLAGS[command] to this process; returns what was set. */
export function applyV8Flags(command: CommandName, execArgv: readonly string[] = process.execArgv): string[] {
  const flags = v8FlagsFor(command, execArgv);
  for (const flag of flags) setFlagsFromString(flag);
  return flags;
}
