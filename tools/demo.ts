// `ecs-id-mapper demo` (cli/main.ts loads runDemo from here); the implementation is tools/demo/run.ts.
export { runDemo, type DemoOptions } from './demo/run.js';
