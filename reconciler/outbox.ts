// The durable outbox: every transition the reconciler emits, sequence-numbered, until the server
// acknowledges it.
//
// Contract:
// - `append` writes JSON lines to `<dir>/outbox.jsonl` and fsyncs before returning: a transition
//   counts as emitted only once it is on disk. Sequence numbers are per host and strictly
//   increasing across restarts and `kill -9`; a number is never reused.
// - A torn last line (crash mid-write) is detected on open and dropped; its seq was never returned.
// - `ack(upToSeq)` forgets entries ≤ upToSeq: the high-water mark goes to `<dir>/outbox.meta.json`
//   (temp + fsync + rename), and the acknowledged lines stay in the log until a compaction. Once
//   they add up to the size of the checkpoint and the queued entries together (at least
//   COMPACT_AFTER_BYTES), an ack compacts: the checkpoint is written, then the remaining entries
//   are rewritten to a temp file, fsynced and renamed over the log. Compacting on every ack
//   rewrote every live container's state each time: 2.8 MB fsynced per report on a host listing
//   4,000 containers, whatever changed. Open skips the lines at or below acked_seq, so a crash
//   anywhere at worst resends acknowledged entries, which the server counts as duplicates. A
//   rewrite that adds lines or changes seqs (coalescing, renumbering) goes the other way: the log
//   first, then the meta and the checkpoint, which must never describe lines the log does not
//   hold (rewrite()).
// - The state dir itself is synced after the log is created and after every rename (syncDir()), so
//   after a power loss the files come back in the order they were written, not only after a kill.
// - Every write is completed or fails: a short write (the disk filling up, a file size limit) is
//   continued, and one that makes no progress throws (writeAll()).
// - Bounded in bytes: when an append would exceed `maxBytes`, queued entries are coalesced to the
//   latest per container (the final state still arrives; seqs keep increasing, with gaps). If the
//   distinct containers alone exceed the bound, the append is still accepted (losing a final
//   state would be worse) and `overCapacity()` turns true until acknowledgements make room.
//   Coalescing rewrites the whole log, so after one it runs again only once another half of the
//   bound has been appended: an outbox that coalescing leaves near or over the bound is not
//   rewritten on every append (it may then hold up to 1.5 × maxBytes before coalescing).
// - Container states survive restarts: at every compaction the latest line per live container is
//   written to `<dir>/containers.checkpoint.jsonl` (temp + fsync + rename) under the seq it covers,
//   merged from the files themselves (the old checkpoint, then the log's lines above its seq), so
//   the daemon holds no copy of them (700 bytes a container, a third of what it held per
//   container). On open, checkpoint + log entries above that seq give the last emitted state and
//   observation of every container not yet gone (`takeRestored()`), so a restarted reconciler
//   does not report its containers a second time. Compaction removes only
//   entries ≤ the acknowledged seq ≤ the checkpoint's seq, so nothing newer is ever lost.
// - Write failures (ENOSPC, EIO...) throw OutboxWriteError with a stable `code`; the log is
//   truncated back to its last good length so no torn line is left behind, and nothing is lost
//   that was already acknowledged as written.
// - The state dir belongs to one instance: the meta file records the instance id the entries were
//   observed on (`claim()`, on the host's first identification). A state dir that comes up on
//   another instance (an AMI made from a running host, a volume moved) keeps its seq counter, but
//   the entries and container states it brought along are forgotten: they are the other instance's
//   containers, and this one reported them gone, under its own id. The server's mark taken for the
//   other instance does not hold for this one either: it is asked again (rebase()).
// - A new state dir does not know what the server holds for this host: a state dir lost or wiped
//   on an instance that reported before restarts at seq 1, below the server's mark, and the server
//   would drop everything at or below it as a replay. Until `rebase()` has been told the server's
//   mark (the reporter asks before its first report), `serverSeqKnown()` is false and nothing is
//   sent; rebase renumbers what is queued above both the mark and every seq this outbox handed
//   out, and the meta file records that it was done (a state dir from before this rule, whose
//   meta file does not say, counts as done).
// - Memory does not grow with the backlog's bytes: queued entries are kept as (seq, container,
//   offset, length) and their lines are read back from the log when sent or rewritten. A server
//   down for hours on a churning host fills the outbox to its bound, and the daemon lives under a
//   64 MiB container limit: holding 16 MiB of lines on the heap made it thrash there.
import * as nodeFs from 'node:fs';
import { join } from 'node:path';
import { ensureDirectory } from '../cli/ensure-directory.js';
import type { ContainerObservation, LifecycleState, Transition } from '../wire/index.js';

/** The subset of node:fs the outbox uses; tests inject one that fails. */
export interface OutboxFs {
  mkdirSync(path: string): unknown;
  openSync(path: string, flags: string): number;
  closeSync(fd: number): void;
  /** Writes from the start of `data`; returns the bytes written, which may be fewer (a short write). */
  writeSync(fd: number, data: Uint8Array): number;
  fsyncSync(fd: number): void;
  ftruncateSync(fd: number, len: number): void;
  fstatSync(fd: number): { size: number };
  /** Positional read (pread); returns the bytes read, 0 at the end of the file. */
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  readFileSync(path: string, encoding: 'utf8'): string;
  renameSync(from: string, to: string): void;
  existsSync(path: string): boolean;
}

export type OutboxErrorCode = 'ERR_OUTBOX_WRITE' | 'ERR_OUTBOX_NO_SPACE' | 'ERR_OUTBOX_OPEN' | 'ERR_OUTBOX_CLOSED' | 'ERR_OUTBOX_READ' | 'ERR_OUTBOX_REFUSED';

export class OutboxWriteError extends Error {
  readonly name = 'OutboxWriteError';
  constructor(
    readonly code: OutboxErrorCode,
    message: string,
    readonly syscallCode: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type PendingTransition = Omit<Transition, 'seq'>;

export interface OutboxOptions {
  dir: string;
  maxBytes: number;
  fs?: OutboxFs;
  /**
   * Runs before every change to the files (append, ack, claim, rebase) and may throw to refuse it:
   * the daemon's state dir lock (state-lock.ts assertHeld), so a daemon that lost its lock writes nothing.
   */
  beforeWrite?: () => void;
  /** Acknowledged bytes kept in the log before an ack compacts it, unless the checkpoint and the queue weigh more (default COMPACT_AFTER_BYTES). */
  compactAfterBytes?: number;
}

export interface OutboxStats {
  depth: number;
  bytes: number;
  lastSeq: number;
  ackedSeq: number;
  coalescedTotal: number;
  overCapacity: boolean;
}

interface Entry {
  seq: number;
  containerId: string;
  /** Where its line (JSON + '\n') starts in the current log file. */
  offset: number;
  /** The line's length in bytes. */
  bytes: number;
  /** The line itself, only while it is not yet in the log (a coalescing append, until its rewrite). */
  line: string | undefined;
}

/** Most bytes read from the log at once (peek, rewrite). */
const READ_RUN_BYTES = 1 << 20;

/** Acknowledged bytes the log may keep before an ack compacts it, unless the checkpoint and the queue weigh more. */
const COMPACT_AFTER_BYTES = 64 * 1024;

/** What a merge of the state files needs from a line: who, which seq, which state. */
interface LineHead {
  seq: number;
  container_id: string;
  to: string;
}

/** The head of a line as append writes it (JSON.stringify, keys in this order), read without parsing the observation. */
const LINE_HEAD = /^\{"seq":(\d+),"container_id":("(?:[^"\\]|\\.)*"),"from":(?:null|"[a-z]+"),"to":"([a-z]+)"/;

/** The line's head, or undefined when it is no transition (a line of another shape is parsed whole). */
function lineHead(line: string): LineHead | undefined {
  const m = LINE_HEAD.exec(line);
  if (m) return { seq: Number(m[1]), container_id: JSON.parse(m[2]) as string, to: m[3] };
  try {
    const t = JSON.parse(line) as Transition;
    return Number.isInteger(t.seq) && typeof t.container_id === 'string' ? { seq: t.seq, container_id: t.container_id, to: t.to } : undefined;
  } catch {
    return undefined;
  }
}

/** A container's last emitted state and observation, as restored from disk. */
export interface RestoredContainer {
  state: Exclude<LifecycleState, 'gone'>;
  container: ContainerObservation;
}

export interface Outbox {
  /**
   * Hands over, once, the containers not gone as of the last emitted transitions, read on open;
   * later calls return []. Held on to, they cost every restarted daemon about 600 bytes a container
   * for its whole life.
   */
  takeRestored(): RestoredContainer[];
  /** Appends and fsyncs; returns the entries with their seqs. Throws OutboxWriteError. */
  append(transitions: readonly PendingTransition[]): Transition[];
  /** The oldest unacknowledged entries, at most `max`, read back from the log. Throws OutboxWriteError (ERR_OUTBOX_READ). */
  peek(max: number): Transition[];
  /**
   * Forgets entries with seq ≤ upToSeq, and compacts the log once the acknowledged lines it still
   * holds add up to the checkpoint's and the queued entries' size (see the contract above). When
   * upToSeq is beyond lastSeq (the server remembers more than this state dir), queued entries are
   * renumbered above it.
   * Throws OutboxWriteError.
   */
  ack(upToSeq: number): void;
  /** Highest seq ever assigned (0 before the first). */
  lastSeq(): number;
  ackedSeq(): number;
  depth(): number;
  bytes(): number;
  overCapacity(): boolean;
  stats(): OutboxStats;
  /** The instance id this state dir was claimed for, null before the first claim. */
  owner(): string | null;
  /**
   * Claims the state dir for `instanceId` (the host's identity from IMDS). When it belonged to
   * another instance, the entries and container states that were on disk at open are forgotten
   * (seqs are never reused); returns the container ids forgotten and how many queued entries went.
   * Throws OutboxWriteError.
   */
  claim(instanceId: string): { forgotten: string[]; dropped: number; previous: string | null };
  /** False for a new state dir until rebase() was told the server's mark for this host. */
  serverSeqKnown(): boolean;
  /**
   * Takes the server's last seq for this host (0: it has none) before anything is sent: queued
   * entries are renumbered above it and above every seq handed out, and both marks count as
   * acknowledged. Recorded in the meta file; a no-op once done. Throws OutboxWriteError.
   */
  rebase(serverSeq: number): void;
  /** What open found damaged on disk and repaired (main.ts logs and counts it). */
  repairsOnOpen(): OutboxRepairs;
  close(): void;
}

/** Damage open found in the state dir, and what it means. */
export interface OutboxRepairs {
  /** The log's last line was cut short (a crash mid-append): dropped, and its seq was never handed out. */
  tornTail: boolean;
  /** Complete log lines that are not transitions (a torn write followed by a retry, or bytes changed on disk): dropped; a transition they held is lost. */
  corruptLines: number;
  /**
   * The meta file was unreadable: rebuilt from the checkpoint and the log. Every log line above the
   * checkpoint is sent again (the server drops the seqs it holds); with no seq on disk at all, the
   * server's mark is asked for again, as for a new state dir.
   */
  metaRebuilt: boolean;
  /** The checkpoint was unreadable: left out; containers it alone knew are restored by the next pass. */
  checkpointUnreadable: boolean;
}

const LOG = 'outbox.jsonl';
const META = 'outbox.meta.json';
const CHECKPOINT = 'containers.checkpoint.jsonl';

function wrap(err: unknown, what: string): OutboxWriteError {
  const sys = (err as NodeJS.ErrnoException)?.code;
  const code: OutboxErrorCode = sys === 'ENOSPC' || sys === 'EDQUOT' ? 'ERR_OUTBOX_NO_SPACE' : 'ERR_OUTBOX_WRITE';
  return new OutboxWriteError(code, `outbox ${what} failed: ${(err as Error)?.message ?? String(err)}`, sys, { cause: err });
}

interface MetaFile {
  last_seq?: number;
  acked_seq?: number;
  instance_id?: string;
  server_seq_known?: boolean;
}

/** The meta file's fields; undefined when it is not a JSON object. */
function parseMeta(text: string): MetaFile | undefined {
  try {
    const meta = JSON.parse(text) as unknown;
    return typeof meta === 'object' && meta !== null && !Array.isArray(meta) ? (meta as MetaFile) : undefined;
  } catch {
    return undefined;
  }
}

export function openOutbox(options: OutboxOptions): Outbox {
  const fs = options.fs ?? (nodeFs as unknown as OutboxFs);
  const logPath = join(options.dir, LOG);
  const metaPath = join(options.dir, META);
  const checkpointPath = join(options.dir, CHECKPOINT);
  /** Latest transition per container not gone, as read on open (handed over by takeRestored()). */
  const openStates = new Map<string, Transition>();
  const noteOpenState = (t: Transition) => {
    if (t.to === 'gone') openStates.delete(t.container_id);
    else openStates.set(t.container_id, t);
  };
  const maxBytes = options.maxBytes;

  let entries: Entry[] = [];
  /** Bytes of the queued (unacknowledged) entries. */
  let bytes = 0;
  /** Bytes of acknowledged lines still in the log, until the next compaction. */
  let ackedInLog = 0;
  /** Size of the checkpoint last written or read: an ack compacts once ackedInLog reaches it plus `bytes`. */
  let checkpointBytes = 0;
  let lastSeq = 0;
  let ackedSeq = 0;
  let coalescedTotal = 0;
  /** Bytes queued right after the last coalescing (0 after an acknowledgement): see append. */
  let coalescedTo = 0;
  /** The instance the state dir belongs to (claim()). */
  let instanceId: string | null = null;
  /** Whether the server's mark for this host was taken (rebase()); false for a new state dir. */
  let serverSeqKnown = false;
  let fd = -1;
  let closed = false;

  const repairs: OutboxRepairs = { tornTail: false, corruptLines: 0, metaRebuilt: false, checkpointUnreadable: false };
  try {
    ensureDirectory(options.dir, fs);
    if (fs.existsSync(metaPath)) {
      const meta = parseMeta(fs.readFileSync(metaPath, 'utf8'));
      if (meta === undefined) {
        // Written by rename only, so never torn: changed on disk. Rebuilt below from the other files.
        repairs.metaRebuilt = true;
      } else {
        lastSeq = Number.isInteger(meta.last_seq) ? meta.last_seq! : 0;
        ackedSeq = Number.isInteger(meta.acked_seq) ? meta.acked_seq! : 0;
        instanceId = typeof meta.instance_id === 'string' && meta.instance_id !== '' ? meta.instance_id : null;
        // Written by a version before rebase(): that state dir has reported already.
        serverSeqKnown = meta.server_seq_known !== false;
      }
    }
  } catch (err) {
    throw new OutboxWriteError('ERR_OUTBOX_OPEN', `outbox open failed in ${options.dir}: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }

  /** The seq the checkpoint covers: the log's lines above it add to its states. */
  let checkpointSeq = 0;
  /** False when the checkpoint on disk is unreadable: it is left out of every merge until rewritten. */
  let checkpointUsable = false;
  try {
    if (fs.existsSync(checkpointPath)) {
      let header: { seq?: number } | undefined;
      const tornTail = scanFile(checkpointPath, (line, _offset, b) => {
        checkpointBytes += b;
        if (header === undefined) header = JSON.parse(line) as { seq?: number };
        else noteOpenState(JSON.parse(line) as Transition);
      });
      if (tornTail) throw new Error('the checkpoint ends inside a line');
      checkpointSeq = Number.isInteger(header?.seq) ? header!.seq! : 0;
      checkpointUsable = true;
    }
  } catch {
    // Written by rename only, so never torn; unreadable means tampered: start without it.
    openStates.clear();
    checkpointSeq = 0;
    checkpointBytes = 0;
    repairs.checkpointUnreadable = true;
  }
  // A rebuilt meta: what the checkpoint covers was acknowledged; the log's lines above it are
  // queued again, and its highest seq (scanned below) is the last one handed out.
  if (repairs.metaRebuilt) ackedSeq = lastSeq = checkpointSeq;

  /**
   * Calls `visit` with each complete line of a file (decoded, ending in '\n'), its byte offset
   * and its length in bytes, reading READ_RUN_BYTES at a time so that opening a long backlog takes
   * no more memory than running with it. Returns whether bytes follow the last newline (a torn write).
   */
  function scanFile(path: string, visit: (line: string, offset: number, bytes: number) => void): boolean {
    const rfd = fs.openSync(path, 'r');
    try {
      const chunk = Buffer.allocUnsafe(READ_RUN_BYTES);
      let carry = Buffer.alloc(0);
      let carryOffset = 0; // the log offset of carry[0]
      for (let position = 0; ; ) {
        const n = fs.readSync(rfd, chunk, 0, chunk.length, position);
        if (n === 0) return carry.length > 0;
        position += n;
        const buf = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, n)]) : chunk.subarray(0, n);
        let start = 0;
        for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
          // A fresh string per line: one kept must not hold on to the chunk.
          visit(buf.toString('utf8', start, nl + 1), carryOffset + start, nl + 1 - start);
          start = nl + 1;
        }
        carry = Buffer.from(buf.subarray(start)); // a copy: `chunk` is reused
        carryOffset += start;
      }
    } finally {
      fs.closeSync(rfd);
    }
  }

  let torn = false;
  /**
   * Offsets of the complete but corrupt lines found on open, until the log is rewritten without
   * them: merges (forEachStateLine) read only a line's head, which such a line may still have.
   */
  const corruptAt = new Set<number>();
  try {
    if (fs.existsSync(logPath)) {
      const tornTail = scanFile(logPath, (line, offset, b) => {
        let t: Transition;
        try {
          t = JSON.parse(line) as Transition;
        } catch {
          // A complete line that is not JSON: a torn write followed by a retry, or bytes changed
          // on disk (a crash mid-append leaves the last line short instead: tornTail).
          torn = true;
          corruptAt.add(offset);
          repairs.corruptLines++;
          return;
        }
        if (!Number.isInteger(t.seq)) {
          torn = true;
          corruptAt.add(offset);
          repairs.corruptLines++;
          return;
        }
        if (t.seq > lastSeq) lastSeq = t.seq;
        if (t.seq > checkpointSeq) noteOpenState(t);
        if (t.seq <= ackedSeq) {
          ackedInLog += b;
          return;
        }
        entries.push({ seq: t.seq, containerId: t.container_id, offset, bytes: b, line: undefined });
        bytes += b;
      });
      if (tornTail) torn = repairs.tornTail = true; // no newline after the last line: the write never completed
    }
  } catch (err) {
    throw new OutboxWriteError('ERR_OUTBOX_OPEN', `outbox open failed reading ${logPath}: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }

  /** The log, opened for appending and positional reads on first use after a rewrite. */
  function logFd(): number {
    if (fd < 0) {
      const created = !fs.existsSync(logPath);
      fd = fs.openSync(logPath, 'a+');
      if (created) syncDir();
    }
    return fd;
  }

  /**
   * Makes the state dir's entries durable: a file created or renamed into place is on disk only
   * once its directory is synced, so after a power loss (not a process kill) the meta file, the
   * checkpoint and the log could otherwise come back in an older arrangement than the order
   * they were written in (rewrite()). Best effort: it runs after a rename has already taken
   * effect, when the daemon's state matches the files, so a failure here (a file system that
   * cannot sync a directory, EINVAL) must not make the caller roll back what is in place.
   */
  function syncDir(): void {
    let dfd = -1;
    try {
      dfd = fs.openSync(options.dir, 'r');
      fs.fsyncSync(dfd);
    } catch {
      // Durability across a power loss is what is lost, not consistency.
    } finally {
      if (dfd >= 0) fs.closeSync(dfd);
    }
  }

  function readLog(position: number, length: number): string {
    const buf = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const n = fs.readSync(logFd(), buf, done, length - done, position + done);
      if (n === 0) throw new Error(`outbox log ends at byte ${position + done}, before the queued entry ending at ${position + length}`);
      done += n;
    }
    return buf.toString('utf8');
  }

  /**
   * Calls `visit` with the lines of `list` in order, as runs of whole lines (each ending in
   * '\n'): entries adjacent in the log are read together, up to READ_RUN_BYTES at a time.
   */
  function forEachRun(list: readonly Entry[], visit: (text: string, run: readonly Entry[]) => void): void {
    let i = 0;
    while (i < list.length) {
      const first = list[i];
      if (first.line !== undefined) {
        visit(first.line, [first]);
        i++;
        continue;
      }
      let j = i + 1;
      let end = first.offset + first.bytes;
      while (j < list.length && list[j].line === undefined && list[j].offset === end && end + list[j].bytes - first.offset <= READ_RUN_BYTES) {
        end += list[j].bytes;
        j++;
      }
      visit(readLog(first.offset, end - first.offset), list.slice(i, j));
      i = j;
    }
  }

  /**
   * Writes all of `text`. write(2) may write fewer bytes than asked without an error (a disk
   * filling up, a file size limit), and Node returns that count: taken for the whole, it left a
   * partial line that the next append ran into, and offsets past the end of the log.
   */
  function writeAll(fd: number, text: string): void {
    let rest: Uint8Array = Buffer.from(text, 'utf8');
    while (rest.length > 0) {
      const n = fs.writeSync(fd, rest);
      if (!(n > 0)) throw Object.assign(new Error(`write made no progress with ${rest.length} bytes left`), { code: 'EIO' });
      rest = rest.subarray(n);
    }
  }

  function writeMeta(): void {
    const tmp = `${metaPath}.tmp`;
    const mfd = fs.openSync(tmp, 'w');
    try {
      writeAll(mfd, JSON.stringify({ last_seq: lastSeq, acked_seq: ackedSeq, ...(instanceId !== null ? { instance_id: instanceId } : {}), server_seq_known: serverSeqKnown }) + '\n');
      fs.fsyncSync(mfd);
    } finally {
      fs.closeSync(mfd);
    }
    fs.renameSync(tmp, metaPath);
    syncDir();
  }

  /**
   * Calls `visit` with every line that holds a container state, in order: the checkpoint's (after
   * its header), then the log's, with what it says (`undefined` for a line that is no transition,
   * or a log line the checkpoint covers). Every line is passed, so that two scans count alike;
   * with `heads` false, none is read (`undefined` for all).
   */
  function forEachStateLine(heads: boolean, visit: (line: string, head: LineHead | undefined) => void): void {
    if (checkpointUsable && fs.existsSync(checkpointPath)) {
      let header = true;
      scanFile(checkpointPath, (line) => {
        if (header) header = false;
        else visit(line, heads ? lineHead(line) : undefined);
      });
    }
    if (fs.existsSync(logPath)) {
      scanFile(logPath, (line, offset) => {
        const head = heads && !corruptAt.has(offset) ? lineHead(line) : undefined;
        // As on open: the log adds only what the checkpoint does not cover.
        visit(line, head !== undefined && head.seq > checkpointSeq ? head : undefined);
      });
    }
  }

  /**
   * Writes the checkpoint: the latest line of every container not gone, merged from the files
   * (forEachStateLine) in two scans, the first finding which line is each container's latest, the
   * second copying those. What it holds meanwhile is a number per container, never their lines.
   * `keep` leaves out containers whose latest seq it refuses (claim()).
   */
  function writeCheckpoint(keep: (seq: number) => boolean = () => true): void {
    const winner = new Map<string, { index: number; seq: number }>();
    let index = 0;
    forEachStateLine(true, (_line, t) => {
      const i = index++;
      if (t === undefined) return;
      if (t.to === 'gone') winner.delete(t.container_id);
      else winner.set(t.container_id, { index: i, seq: t.seq });
    });
    const copy = new Set<number>();
    for (const w of winner.values()) if (keep(w.seq)) copy.add(w.index);
    winner.clear();
    const tmp = `${checkpointPath}.tmp`;
    const cfd = fs.openSync(tmp, 'w');
    let written = 0;
    try {
      let pending = JSON.stringify({ seq: lastSeq }) + '\n';
      index = 0;
      forEachStateLine(false, (line) => {
        if (!copy.has(index++)) return;
        pending += line;
        if (pending.length >= READ_RUN_BYTES) {
          writeAll(cfd, pending);
          written += Buffer.byteLength(pending);
          pending = '';
        }
      });
      writeAll(cfd, pending);
      written += Buffer.byteLength(pending);
      fs.fsyncSync(cfd);
    } finally {
      fs.closeSync(cfd);
    }
    fs.renameSync(tmp, checkpointPath);
    checkpointSeq = lastSeq;
    checkpointUsable = true;
    checkpointBytes = written;
    syncDir();
  }

  /**
   * Rewrites the log from `entries` (temp + fsync + rename), copying their lines from the current
   * log a run at a time. With `renumberFrom`, the entries get seqs renumberFrom + 1, + 2, ...
   * `entries` takes the new offsets only once the rename is done: if anything before it throws,
   * the old log is still in place and the old offsets still point into it.
   *
   * The meta file and the checkpoint are written around it, in the order that survives a crash
   * (or a failed write) at any point:
   * - `dropsOnly` (an acknowledgement, a torn line): before the log. A seq leaving the log must
   *   already be covered by the meta's last_seq (else a restart could hand it out again), and a
   *   container state leaving it must already be in the checkpoint.
   * - otherwise (a coalescing append adds lines, renumbering changes seqs): after the log. A
   *   checkpoint written first held states whose lines then never reached the log, and a restart
   *   took them as reported; a meta file written first moved acked_seq past the old seqs of a log
   *   not yet renumbered, and a restart dropped them all as acknowledged. Once the log is in
   *   place the rewrite has happened: the meta's last_seq and the states can be read back from
   *   the log, so a failure to write either is left to the next compaction. Acknowledged lines
   *   still in the log would leave it before the checkpoint holds their states, so callers
   *   compact first (flushAcknowledged()).
   */
  function rewrite(dropsOnly: boolean, renumberFrom?: number): void {
    if (dropsOnly) {
      writeMeta();
      writeCheckpoint();
    }
    const tmp = `${logPath}.tmp`;
    const rewritten: Entry[] = [];
    let offset = 0;
    const tfd = fs.openSync(tmp, 'w');
    try {
      forEachRun(entries, (text, run) => {
        if (renumberFrom === undefined) {
          writeAll(tfd, text);
          for (const e of run) {
            rewritten.push({ seq: e.seq, containerId: e.containerId, offset, bytes: e.bytes, line: undefined });
            offset += e.bytes;
          }
          return;
        }
        let renumbered = '';
        for (const old of text.split('\n')) {
          if (old === '') continue;
          const t = JSON.parse(old) as Transition;
          t.seq = renumberFrom + rewritten.length + 1;
          const line = JSON.stringify(t) + '\n';
          const b = Buffer.byteLength(line);
          rewritten.push({ seq: t.seq, containerId: t.container_id, offset, bytes: b, line: undefined });
          offset += b;
          renumbered += line;
        }
        writeAll(tfd, renumbered);
      });
      fs.fsyncSync(tfd);
    } finally {
      fs.closeSync(tfd);
    }
    if (fd >= 0) fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, logPath);
    syncDir();
    entries = rewritten;
    bytes = offset;
    ackedInLog = 0;
    corruptAt.clear();
    if (!dropsOnly) {
      try {
        writeMeta();
        writeCheckpoint();
      } catch {
        // Open reads the highest seq and the newest states from the log too; the next
        // acknowledgement writes both again.
      }
    }
  }

  if (repairs.metaRebuilt) {
    // No seq on disk at all: the server's mark is asked for again (rebase), as for a new state
    // dir, or the next seqs could be ones the server holds already. The instance is claimed again.
    serverSeqKnown = lastSeq > 0;
  }
  try {
    if (torn) rewrite(true);
    else logFd();
    if (repairs.metaRebuilt) writeMeta();
  } catch (err) {
    throw new OutboxWriteError('ERR_OUTBOX_OPEN', `outbox open failed in ${options.dir}: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
  }

  /** Compacts now if acknowledged lines are still in the log: before a rewrite that is not dropsOnly. */
  function flushAcknowledged(): void {
    if (ackedInLog > 0) rewrite(true);
  }

  /**
   * Renumbers every queued entry above `base` (base + 1, + 2, ...) and counts everything up to
   * base as acknowledged: for a server mark this outbox cannot have handed out (ack) or one taken
   * before the first report (rebase). On a failed write nothing changes, and it throws.
   */
  function renumberAbove(base: number, what: string): void {
    try {
      flushAcknowledged();
    } catch (err) {
      throw wrap(err, what);
    }
    const prevEntries = entries;
    const prevBytes = bytes;
    const prevAcked = ackedSeq;
    const prevLast = lastSeq;
    lastSeq = base + entries.length;
    ackedSeq = base;
    coalescedTo = 0;
    try {
      rewrite(false, base);
    } catch (err) {
      entries = prevEntries;
      bytes = prevBytes;
      ackedSeq = prevAcked;
      lastSeq = prevLast;
      throw wrap(err, what);
    }
  }

  /** Entries up to this seq were on disk at open: what a state dir brought from another instance. */
  const openedAtSeq = lastSeq;
  /** What a claim that failed part-way named as forgotten (claim()). */
  let forgottenByFailedClaim: string[] = [];

  let restoredAtOpen: RestoredContainer[] = [];
  for (const t of openStates.values()) restoredAtOpen.push({ state: t.to as RestoredContainer['state'], container: t.container });
  openStates.clear();

  /** Keeps only the newest entry per container. Returns how many were dropped. */
  function coalesce(): number {
    const latest = new Map<string, number>();
    for (const e of entries) latest.set(e.containerId, e.seq);
    const kept = entries.filter((e) => latest.get(e.containerId) === e.seq);
    const dropped = entries.length - kept.length;
    entries = kept; // rewrite(), which always follows, gives them offsets and sets `bytes`
    return dropped;
  }

  function ensureOpen(): void {
    if (closed) throw new OutboxWriteError('ERR_OUTBOX_CLOSED', 'outbox is closed', undefined);
  }

  /** A refusal by beforeWrite is an OutboxWriteError: callers keep what they meant to write and retry. */
  function ensureWritable(): void {
    ensureOpen();
    try {
      options.beforeWrite?.();
    } catch (err) {
      throw new OutboxWriteError('ERR_OUTBOX_REFUSED', `outbox write refused: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  return {
    takeRestored() {
      const taken = restoredAtOpen;
      restoredAtOpen = [];
      return taken;
    },
    append(transitions) {
      ensureWritable();
      if (transitions.length === 0) return [];
      const out: Transition[] = new Array(transitions.length);
      const fresh: Entry[] = new Array(transitions.length);
      const lines: string[] = new Array(transitions.length);
      let chunk = '';
      let chunkBytes = 0;
      let seq = lastSeq;
      for (let i = 0; i < transitions.length; i++) {
        const t = transitions[i];
        const withSeq: Transition = {
          seq: ++seq,
          container_id: t.container_id,
          from: t.from,
          to: t.to,
          at: t.at,
          reason: t.reason,
          container: t.container,
        };
        const line = JSON.stringify(withSeq) + '\n';
        const b = Buffer.byteLength(line);
        out[i] = withSeq;
        lines[i] = line;
        fresh[i] = { seq: withSeq.seq, containerId: t.container_id, offset: -1, bytes: b, line: undefined };
        chunk += line;
        chunkBytes += b;
      }

      if (bytes + chunkBytes > maxBytes && bytes + chunkBytes > coalescedTo + maxBytes / 2) {
        // Coalesce queued and new entries together, then persist by rewriting the whole log.
        try {
          flushAcknowledged();
        } catch (err) {
          throw wrap(err, 'coalescing rewrite');
        }
        const prevEntries = entries;
        const prevBytes = bytes;
        for (let i = 0; i < fresh.length; i++) fresh[i].line = lines[i];
        entries = entries.concat(fresh);
        bytes += chunkBytes;
        const dropped = coalesce();
        const prevLast = lastSeq;
        lastSeq = seq;
        // The checkpoint written by rewrite() covers seqs up to lastSeq: it is merged from the new
        // log, which holds the fresh lines.
        try {
          rewrite(false);
        } catch (err) {
          entries = prevEntries;
          bytes = prevBytes;
          lastSeq = prevLast;
          throw wrap(err, 'coalescing rewrite');
        }
        coalescedTotal += dropped;
        coalescedTo = bytes;
        return out;
      }

      let size = -1;
      try {
        size = fs.fstatSync(logFd()).size;
        writeAll(fd, chunk);
        fs.fsyncSync(fd);
      } catch (err) {
        // Leave no partial line behind: the next append must start on a line boundary.
        if (size >= 0) {
          try {
            fs.ftruncateSync(fd, size);
          } catch {
            /* the torn tail is dropped on the next open */
          }
        }
        throw wrap(err, 'append');
      }
      lastSeq = seq;
      let offset = size;
      for (let i = 0; i < fresh.length; i++) {
        fresh[i].offset = offset;
        offset += fresh[i].bytes;
        entries.push(fresh[i]);
      }
      bytes += chunkBytes;
      return out;
    },

    peek(max) {
      ensureOpen();
      const out: Transition[] = [];
      try {
        forEachRun(entries.slice(0, Math.max(0, max)), (text) => {
          for (const line of text.split('\n')) if (line !== '') out.push(JSON.parse(line) as Transition);
        });
      } catch (err) {
        throw new OutboxWriteError('ERR_OUTBOX_READ', `outbox read failed: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code, { cause: err });
      }
      return out;
    },

    ack(upToSeq) {
      ensureWritable();
      if (upToSeq <= ackedSeq) return;
      // The server holds a later seq than this outbox ever assigned: the state dir was lost.
      // Everything queued would read as a replay, so it is renumbered above the server's mark.
      if (upToSeq > lastSeq) return renumberAbove(upToSeq, 'compaction');
      const prevEntries = entries;
      const prevAcked = ackedSeq;
      let i = 0;
      let dropped = 0;
      while (i < entries.length && entries[i].seq <= upToSeq) dropped += entries[i++].bytes;
      if (i > 0) entries = entries.slice(i);
      ackedSeq = upToSeq;
      coalescedTo = 0;
      // A compaction reads the checkpoint and the whole log: it waits until what it reclaims is at
      // least that much, so its cost stays in proportion to what was appended, also while a long
      // backlog drains.
      const compact = ackedInLog + dropped >= Math.max(options.compactAfterBytes ?? COMPACT_AFTER_BYTES, checkpointBytes + bytes - dropped);
      try {
        if (compact) {
          rewrite(true);
        } else {
          writeMeta();
          bytes -= dropped;
          ackedInLog += dropped;
        }
      } catch (err) {
        entries = prevEntries;
        ackedSeq = prevAcked;
        throw wrap(err, compact ? 'compaction' : 'acknowledgement');
      }
    },

    owner: () => instanceId,

    claim(id) {
      ensureWritable();
      const previous = instanceId;
      if (previous === id) return { forgotten: [], dropped: 0, previous };
      if (previous === null) {
        // A new state dir, or one from a version that did not record its instance: nothing to tell apart.
        instanceId = id;
        try {
          writeMeta();
        } catch (err) {
          instanceId = previous;
          throw wrap(err, 'claim');
        }
        return { forgotten: [], dropped: 0, previous };
      }
      const prevEntries = entries;
      const prevBytes = bytes;
      const prevAcked = ackedSeq;
      // The containers whose latest state on disk was written before open (the other instance's),
      // and those a failed attempt already took out of the checkpoint: the caller drops them all.
      const forgottenSet = new Set(forgottenByFailedClaim);
      try {
        forEachStateLine(true, (_line, t) => {
          if (t === undefined) return;
          if (t.to !== 'gone' && t.seq <= openedAtSeq) forgottenSet.add(t.container_id);
          else forgottenSet.delete(t.container_id);
        });
      } catch (err) {
        throw wrap(err, 'claim');
      }
      const forgotten = [...forgottenSet];
      let i = 0;
      while (i < entries.length && entries[i].seq <= openedAtSeq) i++;
      entries = entries.slice(i);
      ackedSeq = Math.max(ackedSeq, openedAtSeq);
      instanceId = id;
      // The server's mark is per instance: the one taken was the other instance's, and this one's
      // may be higher than the counter brought along (its own state dir was replaced). Asked again
      // (rebase()) before anything is sent, or its first snapshot went below the records it holds.
      const prevServerSeqKnown = serverSeqKnown;
      serverSeqKnown = false;
      coalescedTo = 0;
      try {
        // The checkpoint first: a meta file naming this instance beside the other one's states
        // would restore them as this instance's after a crash.
        writeCheckpoint((seq) => seq > openedAtSeq);
        rewrite(true);
      } catch (err) {
        entries = prevEntries;
        bytes = prevBytes;
        ackedSeq = prevAcked;
        instanceId = previous;
        serverSeqKnown = prevServerSeqKnown;
        // The checkpoint may hold them no more: the next attempt must still name them.
        forgottenByFailedClaim = forgotten;
        throw wrap(err, 'claim');
      }
      forgottenByFailedClaim = [];
      return { forgotten, dropped: i, previous };
    },

    serverSeqKnown: () => serverSeqKnown,

    rebase(serverSeq) {
      ensureWritable();
      if (serverSeqKnown) return;
      // Above the server's mark, and above every seq handed out here: a seq is never reused.
      if (serverSeq > 0) renumberAbove(Math.max(serverSeq, lastSeq), 'rebase');
      // Recorded before anything is sent: once reports went out, a restart must not take the
      // server's mark again (entries it had applied would be renumbered and applied twice). If
      // this write fails, the next attempt renumbers once more, above what this one handed out.
      serverSeqKnown = true;
      try {
        writeMeta();
      } catch (err) {
        serverSeqKnown = false;
        throw wrap(err, 'rebase');
      }
    },

    lastSeq: () => lastSeq,
    ackedSeq: () => ackedSeq,
    depth: () => entries.length,
    bytes: () => bytes,
    overCapacity: () => bytes > maxBytes,
    stats: () => ({ depth: entries.length, bytes, lastSeq, ackedSeq, coalescedTotal, overCapacity: bytes > maxBytes }),
    repairsOnOpen: () => ({ ...repairs }),
    close() {
      if (closed) return;
      closed = true;
      if (fd >= 0) fs.closeSync(fd);
      fd = -1;
    },
  };
}
