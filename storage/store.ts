// The Store: the one interface both backends (SQLite, SimpleDB) implement and one contract suite
// (storage/store.contract.ts) checks. Records are snake_case, as on the wire and in the original API.
//
// Ordering contract: a record carries the sequence number of the host report that last changed it.
// A transition or snapshot entry with a sequence number at or below the record's never changes it, so
// replays, retries and two API replicas writing at once cannot regress state.
import type {
  ContainerObservation,
  HostIdentity,
  HostSnapshot,
  LifecycleState,
  PortMapping,
  RecordSource,
  SnapshotResult,
  TransitionBatch,
  TransitionBatchResult,
} from '../wire/index.js';

export type { LifecycleState, PortMapping, RecordSource } from '../wire/index.js';

/** One container, keyed by its full 64-hex Docker id. Times are ISO-8601 UTC with milliseconds. */
export interface ContainerRecord {
  container_id: string;
  docker_name: string | null;
  container_name: string | null;
  image: string | null;
  task_arn: string | null;
  /** Last `/` segment of the ARN: 32 hex or a dashed UUID. */
  task_id: string | null;
  /** The task id exactly as a legacy agent reported it (`<cluster>/<id>` for new ARNs), else null. */
  task_id_raw: string | null;
  task_family: string | null;
  task_version: string | null;
  cluster: string | null;
  container_instance_arn: string | null;
  instance_id: string;
  instance_ip: string | null;
  instance_type: string | null;
  instance_az: string | null;
  region: string | null;
  host_name: string | null;
  ports: PortMapping[];
  desired_status: string | null;
  known_status: string | null;
  state: LifecycleState;
  restart_count: number;
  exit_code: number | null;
  started_at: string | null;
  first_seen: string;
  last_seen: string;
  stopped_at: string | null;
  gone_at: string | null;
  ecs_agent_version: string | null;
  source: RecordSource;
  /** Sequence number of the host report that last changed this record (0 for legacy reports). */
  seq: number;
  /** Opaque key of the original agent's report map (sha256 of docker id + task id + desired status). */
  legacy_key: string | null;
  /**
   * The original agent's own `sample_time` (ISO) from the legacy report that last wrote this record;
   * null when a reconciler wrote it last. `_all` answers it as `sample_time`, as the original did.
   */
  sampled_at: string | null;
}

/** One entry of a container's history. */
export interface TransitionRecord {
  container_id: string;
  from: LifecycleState | null;
  to: LifecycleState | null;
  at: string;
  /** instance_id of the reporting host. */
  host: string;
  /** The host's sequence number; null for history that did not come with one (legacy events, snapshots). */
  seq: number | null;
  /** `agent.observed`, `container.vanished`, `snapshot`, `legacy.added`, `legacy.removed`, ... */
  reason: string;
}

export interface HostRecord extends HostIdentity {
  first_seen: string;
  last_report_at: string;
  last_snapshot_at: string | null;
  /** Highest sequence number applied for this host (0 when it never sent one). */
  last_seq: number;
  reporter: 'reconciler' | 'legacy';
}

export interface RetiredHosts {
  /** Live records of silent hosts marked gone. */
  containers: number;
  /** Silent hosts without records, removed from the host list. */
  forgottenHosts: number;
}

export type ForgetHostResult =
  /** `containers`: its live records marked gone. */
  | { outcome: 'forgotten'; containers: number }
  | { outcome: 'unknown' }
  /** It has sent sequence numbers (up to `last_seq`): left as it was. */
  | { outcome: 'sequenced'; last_seq: number };

/** A snapshot from the original Python agent's `POST /report/map`, already validated and normalised. */
export interface LegacySnapshot {
  host: HostIdentity;
  received_at: string;
  containers: Array<
    ContainerObservation & {
      state: LifecycleState;
      task_id_raw: string | null;
      legacy_key: string;
      /** The agent's sample_time as ISO. */
      sampled_at: string;
      instance_port: string | null;
      container_port: string | null;
    }
  >;
}

/** `POST /report/event` from the original agent. */
export interface LegacyEvent {
  event_id: string;
  event: 'added' | 'removed';
  at: string;
}

export type ContainerLookup =
  | { kind: 'found'; record: ContainerRecord }
  | { kind: 'missing' }
  /** The first candidates by id (at most 20); `more` when further containers share the prefix. */
  | { kind: 'ambiguous'; candidates: string[]; more: boolean };

export interface ContainerFilter {
  cluster?: string;
  instance_id?: string;
  state?: LifecycleState;
  task_family?: string;
}

export interface PageRequest {
  /** 1..1000 */
  limit: number;
  /** Opaque cursor from a previous page's `next_cursor`. */
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface StateCount {
  state: LifecycleState;
  cluster: string | null;
  count: number;
}

/** How many records one host has in one state (pairs with no record are absent). */
export interface HostStateCount {
  instance_id: string;
  state: LifecycleState;
  count: number;
}

export interface StoreHealth {
  ok: boolean;
  backend: string;
  detail?: string;
}

/** A backend failure the API maps to 503; carries a stable code. */
export class StoreUnavailableError extends Error {
  readonly name = 'StoreUnavailableError';
  readonly code = 'ERR_STORE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A cursor that this store did not issue; the API maps it to 400. */
/**
 * How long an original agent's event whose map key no record has yet waits for the map that brings
 * it (recordLegacyEvent); both backends forget it after this.
 */
export const PENDING_EVENT_MS = 60 * 60_000;

export class InvalidCursorError extends Error {
  readonly name = 'InvalidCursorError';
  readonly code = 'ERR_INVALID_CURSOR';
  constructor(cursor: string) {
    super(`invalid cursor "${cursor.slice(0, 64)}"`);
  }
}

/** What a transition says happened; a replay of a seq says the same (sameTransition). */
export type TransitionFacts = Pick<TransitionRecord, 'container_id' | 'from' | 'to'>;

/** A transition whose seq the host's history already holds for a different transition. */
export interface SeqConflict {
  seq: number;
  stored: TransitionFacts;
  reported: TransitionFacts;
}

export interface AppliedTransitions extends TransitionBatchResult {
  /** Each of the `conflicts`, in seq order: for the server's log, not part of the answer. */
  conflicting: SeqConflict[];
}

/**
 * Whether a history row and a transition with its (host, seq) are the same transition. A retry
 * resends the outbox line as it was (reconciler/outbox.ts never reuses or rewrites a sent seq), so a
 * replay matches in every field; only a second numbering of the host's seqs (two daemons, or a state
 * dir restored from an old copy) makes them differ. Compared: what history records as having
 * happened, the container and its states. Not `at` or `reason`: they say when and why it was seen,
 * and two observers of the same change differ in them without anything being lost.
 */
export function sameTransition(stored: TransitionFacts, reported: TransitionFacts): boolean {
  return stored.container_id === reported.container_id && stored.from === reported.from && stored.to === reported.to;
}

export interface Store {
  readonly backend: 'sqlite' | 'simpledb';

  /**
   * Applies a host's transitions in seq order. A transition whose seq is at or below the host's
   * last applied seq is acknowledged without effect: a duplicate when history holds the same
   * transition under its seq, or no longer holds that seq (purged by retention); a conflict when it
   * holds a different one (sameTransition). History gets each transition exactly once (unique on
   * host + seq).
   */
  applyTransitions(batch: TransitionBatch, receivedAt: Date): Promise<AppliedTransitions>;

  /**
   * Replaces what the server knows of one host with its full snapshot: records are created or
   * updated (unless the record's seq is above snapshot.seq), records of this host that are absent and
   * not yet gone become `gone` (again only when record.seq <= snapshot.seq). State changes made by a
   * snapshot are written to history with reason `snapshot` and seq null.
   */
  replaceSnapshot(snapshot: HostSnapshot, receivedAt: Date): Promise<SnapshotResult>;

  /** The original agent's whole map for one host; same absent → gone rule, no sequence numbers. */
  replaceLegacySnapshot(snapshot: LegacySnapshot): Promise<SnapshotResult>;

  /**
   * Stores an original-agent event as history (container resolved through legacy_key; from/to null,
   * reason `legacy.<event>`). An event whose key matches no record yet waits, at most
   * PENDING_EVENT_MS, for the legacy map that brings the key, which writes it (the agent posts its
   * events before its map).
   */
  recordLegacyEvent(event: LegacyEvent, host: string | null): Promise<void>;

  /** By full id or unique prefix (12..64 lower-case hex; the caller validates). */
  getContainer(idOrPrefix: string): Promise<ContainerLookup>;

  /** Containers of a task, by bare task id or full ARN, ordered by container_id. */
  findByTask(taskIdOrArn: string): Promise<ContainerRecord[]>;

  /** Containers with this docker name (the agent's `ecs-<family>-<rev>-<name>-<hash>`), ordered by container_id. */
  findByDockerName(dockerName: string): Promise<ContainerRecord[]>;

  /** Filtered listing ordered by container_id. */
  listContainers(filter: ContainerFilter, page: PageRequest): Promise<Page<ContainerRecord>>;

  /**
   * Every record matching the filter, once, page by page in no promised order: for reads of the
   * whole fleet (metrics) that have no use for listContainers' order. Pages hold up to `limit`
   * records (SimpleDB: at most 2,500) and may hold fewer before the last; a page's `next_cursor`
   * only continues this scan, with the same filter. SQLite pages in container_id order as
   * listContainers does; SimpleDB reads each shard once instead of merging every shard for each
   * page, which read every shard's next `limit` records to keep a page's worth.
   */
  scanContainers(filter: ContainerFilter, page: PageRequest): Promise<Page<ContainerRecord>>;

  /**
   * History of one container (full id), oldest first; with `latest`, only its latest that many rows.
   * A store keeps a container's latest `--history-limit` rows, and at most a tenth more
   * (storage/history-bound.ts); the rest of a gone container's history goes with it after the retention.
   */
  history(containerId: string, latest?: number): Promise<TransitionRecord[]>;

  /**
   * Every host, by instance id. `consistent`: as of every write acknowledged before the call; SimpleDB
   * otherwise answers from eventually consistent reads, which may lag by about a second.
   */
  listHosts(options?: { consistent?: boolean }): Promise<HostRecord[]>;

  /** Deletes records gone before `goneBefore` and their history; returns how many records went. */
  purgeGone(goneBefore: Date): Promise<number>;

  /**
   * Reconciler hosts that have not reported since `silentSince`: a terminated instance sends no
   * last report, so without this its containers stayed live, and never purged, for good. Their
   * live records become `gone` at `at` (history reason `host.silent`), which starts the retention
   * clock, and a silent host that has no records left is forgotten. A later report from such a
   * host brings its records back as any report does. Hosts of the original agent are left alone:
   * a reconciler sends its whole snapshot every few minutes, but the original agent reports only
   * when a Docker start or die event changes its map, so a host whose containers run for weeks is
   * silent for weeks, and silence says nothing about it.
   */
  retireSilentHosts(silentSince: Date, at: Date): Promise<RetiredHosts>;

  /**
   * An operator's word that an original agent's host is gone for good (`DELETE /v2/hosts/<id>`):
   * silence cannot tell (retireSilentHosts), so a terminated one stayed live and stale forever. Its
   * live records become `gone` at `at` (history reason `host.forgotten`) and the host leaves the host
   * list at once; the records answer lookups until the retention purges them, and a later report
   * from the host brings it back as any report does.
   * Only hosts that never sent a sequence number: a reconciler's host is retired by silence, and its
   * last seq is the mark a daemon on a new state dir numbers from (GET /v2/hosts/<id>), which
   * forgetting it would lose while its sequenced history is still held.
   */
  forgetHost(instanceId: string, at: Date): Promise<ForgetHostResult>;

  /** Counts by state and cluster, for metrics. */
  countByState(): Promise<StateCount[]>;

  /**
   * Counts by host (the record's instance_id) and state, every record including gone ones, ordered by
   * instance_id then state; for `GET /v2/hosts`. Reads no record bodies. Eventually consistent on SimpleDB.
   */
  countByHostAndState(): Promise<HostStateCount[]>;

  health(): Promise<StoreHealth>;

  close(): Promise<void>;
}
