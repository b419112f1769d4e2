// The benchmark's baseline daemon: `bin/ecs-id-mapper` exactly (same CLI entry, same modules),
// minus the launcher's V8 settings (cli/v8-flags.ts), so Node's defaults apply. Only
// bench/reconciler-soak.ts runs it: `node dist/bench/reconciler-daemon.js [--v8-flags=A,B] reconciler [flags]`.
// `--v8-flags` sets those V8 flags at run time instead, the way the launcher does (a row measuring
// an earlier or partial set of the launcher's settings).
import { setFlagsFromString } from 'node:v8';
import { main } from '../cli/main.js';

const argv = process.argv.slice(2);
if (argv[0]?.startsWith('--v8-flags=')) for (const flag of argv.shift()!.slice('--v8-flags='.length).split(',')) setFlagsFromString(flag);
await main(argv, { v8Flags: false });
