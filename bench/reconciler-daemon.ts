// The benchmark's baseline daemon: `bin/ecs-id-mapper` exactly (same CLI entry, same modules),
// minus the launcher's V8 settings (cli/v8-flags.ts), so Node's defaults apply. Only
// bench/reconciler-soak.ts runs it: `node dist/bench/reconciler-daemon.js reconciler [flags]`.
import { main } from '../cli/main.js';

await main(process.argv.slice(2), { v8Flags: false });
