// Simulated reconciler hosts: each keeps its own strictly increasing seq and emits the transitions
// a real reconciler would for its churn (start: null→pending→running; stop: running→stopping→
// stopped→gone). The ground truth — every (host, seq) and every container's final state — is kept
// so the server's records and history can be checked at the end.
import { containerId, hostIdentity, instanceId, observation, taskArn, taskId } from '../../storage/store.fixtures.js';
import type { ContainerObservation, HostIdentity, HostSnapshot, LifecycleState, Transition } from '../../wire/index.js';

export interface TruthContainer {
  host: string;
  state: LifecycleState;
  /** The task the container belongs to (a record with another is wrong). */
  taskArn: string | null;
  /** The seqs of this container's transitions, in order. */
  seqs: number[];
  /** Each seq's from and to: a history entry under that seq with others is wrong. */
  steps: Map<number, { from: LifecycleState | null; to: LifecycleState }>;
}

export class GroundTruth {
  readonly containers = new Map<string, TruthContainer>();
  transitions = 0;

  record(host: string, t: Transition): void {
    let c = this.containers.get(t.container_id);
    if (!c) {
      c = { host, state: t.to, taskArn: t.container.task_arn ?? null, seqs: [], steps: new Map() };
      this.containers.set(t.container_id, c);
    }
    c.state = t.to;
    c.seqs.push(t.seq);
    c.steps.set(t.seq, { from: t.from, to: t.to });
    this.transitions++;
  }
}

interface Live {
  state: LifecycleState;
  obs: ContainerObservation;
}

export class SimHost {
  readonly identity: HostIdentity;
  private seq = 0;
  private born = 0;
  private readonly live = new Map<string, Live>();
  private readonly order: string[] = [];
  private cursor = 0;

  constructor(
    readonly index: number,
    private readonly containers: number,
    private readonly truth: GroundTruth,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.identity = hostIdentity({
      instance_id: instanceId(`fleet-${index}`),
      instance_ip: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`,
      host_name: `ip-10-${(index >> 16) & 255}-${(index >> 8) & 255}-${index & 255}.ec2.internal`,
    });
  }

  get lastSeq(): number {
    return this.seq;
  }

  private emit(out: Transition[], id: string, from: LifecycleState | null, to: LifecycleState, reason: string): void {
    const live = this.live.get(id)!;
    live.state = to;
    const t: Transition = { seq: ++this.seq, container_id: id, from, to, at: this.now().toISOString(), reason, container: live.obs };
    this.truth.record(this.identity.instance_id, t);
    out.push(t);
  }

  private start(out: Transition[]): void {
    const n = this.born++;
    const id = containerId(`fleet-${this.index}/${n}`);
    const obs = observation({ container_id: id, task_arn: taskArn(taskId(`fleet-${this.index}/${n >> 1}`)), docker_name: `ecs-web-3-app-${id.slice(0, 20)}` });
    this.live.set(id, { state: 'pending', obs });
    this.order.push(id);
    this.emit(out, id, null, 'pending', 'agent.observed');
    this.emit(out, id, 'pending', 'running', 'agent.observed');
  }

  /** The first report: every container starts. */
  initial(): Transition[] {
    const out: Transition[] = [];
    for (let i = 0; i < this.containers; i++) this.start(out);
    return out;
  }

  /** One churn step: `replace` running containers stop and go, as many new ones start. */
  churn(replace: number): Transition[] {
    const out: Transition[] = [];
    for (let k = 0; k < replace && this.order.length > 0; k++) {
      // Oldest first, so every container lives about as long as the others.
      const id = this.order[this.cursor];
      this.cursor++;
      this.emit(out, id, 'running', 'stopping', 'agent.observed');
      this.live.get(id)!.obs = { ...this.live.get(id)!.obs, exit_code: 0, known_status: 'STOPPED', desired_status: 'STOPPED' };
      this.emit(out, id, 'stopping', 'stopped', 'agent.observed');
      this.emit(out, id, 'stopped', 'gone', 'container.vanished');
      this.live.delete(id);
      this.start(out);
    }
    if (this.cursor > 1024) {
      this.order.splice(0, this.cursor);
      this.cursor = 0;
    }
    return out;
  }

  /** The full snapshot as of the last seq (sent only after every transition was acknowledged). */
  snapshot(): HostSnapshot {
    const containers = [];
    for (const [, l] of this.live) containers.push({ ...l.obs, state: l.state });
    return { host: this.identity, seq: this.seq, taken_at: this.now().toISOString(), containers };
  }
}
