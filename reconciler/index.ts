// The reconciler daemon's public surface: the runner, the pieces it wires, and the machines.
export { runReconciler, health, type RunReconcilerOptions } from './main.js';
export { createReconcileLoop, observationOf, type ReconcileLoop, type LoopOptions, type PassResult } from './loop.js';
export { createReporter, ReportError, type Reporter, type ReporterOptions, type ReportErrorCode } from './reporter.js';
export { openOutbox, OutboxWriteError, type Outbox, type OutboxOptions, type OutboxFs, type OutboxStats, type PendingTransition } from './outbox.js';
export { createReconcilerMetrics, type ReconcilerMetrics } from './metrics.js';
export * from './machines/index.js';
