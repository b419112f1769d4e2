// The reconciler's pure state machines (xstate v5), one per concern.
export { containerMachine, observedLifecycle } from './container.machine.js';
export type { ContainerMachine, ContainerEvent, ContainerContext, EmittedTransition, AgentObservedEvent, LabelsObservedEvent } from './container.machine.js';
export { hostMachine } from './host.machine.js';
export type { HostMachine, HostEvent, HostContext } from './host.machine.js';
export { reporterMachine, backoffDelay } from './reporter.machine.js';
export type { ReporterMachine, ReporterEvent, ReporterInput, ReporterContext, SendOutput, SendFailure } from './reporter.machine.js';
