// Generates docs/lifecycle.md — mermaid stateDiagram-v2 diagrams of the reconciler's three
// machines — from the machine definitions themselves (machine.root), so the diagrams cannot drift.
// Run: node dist/tools/gen-diagrams.js (npm run docs:diagrams). tools/gen-diagrams.test.ts checks
// the committed file is current.
import { writeFileSync } from 'node:fs';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { containerMachine } from '../reconciler/machines/container.machine.js';
import { hostMachine } from '../reconciler/machines/host.machine.js';
import { reporterMachine } from '../reconciler/machines/reporter.machine.js';

interface TransitionLike {
  eventType: string;
  target?: readonly AnyStateNode[];
  guard?: unknown;
  delay?: unknown;
  actions?: readonly unknown[];
}

function guardName(guard: unknown): string | undefined {
  if (guard === undefined || guard === null) return undefined;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && typeof (guard as { type?: unknown }).type === 'string') return (guard as { type: string }).type;
  return 'guard';
}

/** How an edge is labelled: the event (delays and invoked-actor results in words) plus [guard]. */
function edgeLabel(t: TransitionLike): string {
  let event = t.eventType;
  const after = /^xstate\.after\.([^.]+)\./.exec(event);
  const done = /^xstate\.done\.actor\.(.+)$/.exec(event);
  const error = /^xstate\.error\.actor\.(.+)$/.exec(event);
  if (after) event = `after ${after[1]}`;
  else if (done) event = `${done[1]} done`;
  else if (error) event = `${error[1]} failed`;
  const guard = guardName(t.guard);
  return guard ? `${event} [${guard}]` : event;
}

/** One machine's diagram: every state, every transition (targetless ones drawn as self-loops). */
export function stateDiagram(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  const root = machine.root;
  const initial = (root.config as { initial?: string }).initial;
  if (initial) lines.push(`  [*] --> ${initial}`);
  for (const [key, node] of Object.entries(root.states as Record<string, AnyStateNode>)) {
    if (node.description) lines.push(`  ${key} : ${node.description}`);
    for (const list of (node.transitions as Map<string, TransitionLike[]>).values()) {
      for (const t of list) {
        const targets = t.target && t.target.length > 0 ? t.target.map((n) => n.key) : [key];
        for (const target of targets) lines.push(`  ${key} --> ${target} : ${edgeLabel(t)}`);
      }
    }
    if (node.type === 'final') lines.push(`  ${key} --> [*]`);
  }
  return lines.join('\n');
}

const INTRO = `# Reconciler lifecycle machines

_Generated from the machine definitions in \`reconciler/machines/\` by \`npm run docs:diagrams\`
(\`tools/gen-diagrams.ts\`); do not edit by hand. A test fails when this file is out of date._

The reconciler is level-triggered: every pass observes the whole host and sends each machine the
event that describes what it saw. The machines are pure (xstate v5, no I/O): the loop carries out
their named actions. Edge labels read \`event [guard]\`; \`after X\` is a named delay.`;

const SECTIONS: Array<{ title: string; prose: string; machine: AnyStateMachine }> = [
  {
    title: 'Container lifecycle (`container.machine.ts`)',
    prose: `One machine per Docker container id. \`agent.observed\` carries the task's KnownStatus and
DesiredStatus, the container's RestartCount and Docker's state; the guards classify it (Docker saying
the process exited wins over an agent that lags a poll). \`labels.observed\` maps a container from
its ECS labels while the agent is unreachable. Every state change runs \`emitTransition\` with
\`{from, to, reason}\`, which the loop appends to the durable outbox; a restart (RestartCount grew)
is recorded as \`running → running\` with reason \`container.restarted\`. The restart count is taken only
on a move into running: the agent counts a restart before Docker starts the container again, so a
pass in between sees the new count on an exited container (\`running → stopped\`), and the start that
follows is then \`stopped → running\`, \`container.restarted\`. A stopped container that Docker runs again
(\`docker start\`, \`docker restart\`: the agent's RestartCount does not count those) while the agent lists
its task running goes back to running too (\`stopped → running\`, \`docker.started\`). When the agent answers again about a
container known from its labels, the loop sends the agent's mapping (ports, statuses, start time) as a
same-state transition (\`running → running\`, \`agent.observed\`), since the lifecycle did not move. Only
\`container.vanished\` — sent after a *successful* listing no longer contains the container — leads
to \`gone\`; a failed observation sends nothing, so it can never remove a container. After \`gone\`
is in the outbox the loop drops the machine. (The server has one path to \`gone\` of its own: the
records of a host silent past \`--host-gone-after\`, history reason \`host.silent\`, which the host's next
snapshot undoes; docs/operations.md, host-stale.)`,
    machine: containerMachine,
  },
  {
    title: 'Host link (`host.machine.ts`)',
    prose: `The host's view of its sources. It identifies itself through IMDS (IMDSv2, falling back
to IMDSv1 only when the token request times out or is refused), then waits for the first agent
listing. \`degraded\` means the last agent observation failed: the loop maps new containers from
Docker labels (not the agent's internal containers, named \`~internal~…\`: the pause containers and the
empty volume source carry the task's labels), follows known ones through Docker, and withholds the full snapshot (it would be
incomplete); an empty report goes in its place, so the server still knows the host is alive. A container known only from its labels is marked gone only by a Docker listing without
it, never because Docker failed a pass.`,
    machine: hostMachine,
  },
  {
    title: 'Reporter (`reporter.machine.ts`)',
    prose: `Delivery of outbox batches. \`sendBatch\` is the invoked request (POST transitions, or PUT
the snapshot when the outbox is drained and a full sync is due). Retryable failures (5xx, 408, 429,
timeouts, refused connections) wait \`retryDelay\`: exponential backoff with full jitter, capped at
--backoff-max. A terminal 4xx waits the long \`rejectedDelay\` (10 × --backoff-max) with the batch
still queued, so delivery resumes by itself once the token or the server is fixed.`,
    machine: reporterMachine,
  },
];

export function lifecycleMarkdown(): string {
  const parts = [INTRO];
  for (const s of SECTIONS) parts.push(`## ${s.title}`, s.prose, '```mermaid\n' + stateDiagram(s.machine) + '\n```');
  return parts.join('\n\n') + '\n';
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const target = new URL('../../docs/lifecycle.md', import.meta.url);
  writeFileSync(target, lifecycleMarkdown());
  console.log(`wrote ${target.pathname}`);
}
