// `ecs_id_mapper_container_info{container_id, container_name, task_id, task_family, task_revision,
// cluster, instance_id} 1` for each running container: the kube-state-metrics `*_info` pattern, so
// PromQL can join cAdvisor's `id="/docker/<id>"` series to ECS tasks. It is the ONE series that
// carries container ids; its cardinality is the number of running containers (docs/metrics.md).
//
// Why not a prom-client Gauge: at the default fleet size (2,000 hosts × 30 containers) the block is
// 60,000 series and about 15 MB. As a Gauge, every scrape reset it, set 60,000 label sets and
// serialised them: about 400 ms of the event loop, and about 550 ms more whenever it re-read the
// store, in one piece, so every report in flight waited as long. Here the text is built once per
// refresh, page by page with a turn of the event loop between pages, and kept as the pages' bytes,
// which every scrape in between streams as they are: even copying 15 MB once took 13 ms here.
//
// Freshness: a scrape answers the last completed build. When that build is older than
// `minRefreshMs`, the scrape starts the next one in the background and still answers the last, so
// the series lag the store by up to one refresh interval plus one scrape interval. Only the first
// scrape waits for a build. A build that fails (store down) empties the block, and the next scrape
// tries again: series are absent rather than stale while the store cannot be read.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ContainerRecord, Store } from '../storage/store.js';
import type { WarnLog } from './log-throttle.js';

export const CONTAINER_INFO_METRIC = 'ecs_id_mapper_container_info';

const HELP =
  'Always 1 for each running container; labels map the Docker container id to its ECS task (join with cAdvisor on id="/docker/<container_id>").';

export interface ContainerInfoOptions {
  store: Store;
  now: () => Date;
  /** A build is reused for this long before a scrape starts the next (default 10 s). */
  minRefreshMs?: number;
  /**
   * Running containers read per store page, between two turns of the event loop (default 1,000:
   * about 15 ms of the event loop per page on SQLite here; SimpleDB makes one select per shard per page).
   */
  pageSize?: number;
  log?: WarnLog;
}

interface Build {
  at: number;
  /** The sample lines, one per running container, as UTF-8 bytes, one buffer per store page. */
  pages: Buffer[];
}

/** The `container_info` family in the text format (as bytes), rebuilt from the store at most every `minRefreshMs`. */
export class ContainerInfoExposition {
  private readonly header = Buffer.from(`# HELP ${CONTAINER_INFO_METRIC} ${escapeHelp(HELP)}\n# TYPE ${CONTAINER_INFO_METRIC} gauge\n`);
  private last: Build | undefined;
  private building: Promise<Build | undefined> | undefined;
  private readonly minRefreshMs: number;
  private readonly pageSize: number;
  private stopped = false;

  constructor(private readonly options: ContainerInfoOptions) {
    this.minRefreshMs = options.minRefreshMs ?? 10_000;
    this.pageSize = options.pageSize ?? 1000;
  }

  /** HELP, TYPE and the samples of the last build (no samples while the store cannot be read), in order. */
  async exposition(): Promise<Buffer[]> {
    const now = this.options.now().getTime();
    let build = this.last;
    if (build === undefined) build = await this.rebuild(now);
    else if (now - build.at >= this.minRefreshMs) void this.rebuild(now);
    return build === undefined ? [this.header] : [this.header, ...build.pages];
  }

  /** Ends a build in progress at its next page (the server closes the store after this). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.building;
  }

  private rebuild(now: number): Promise<Build | undefined> {
    this.building ??= this.read(now)
      .then((build) => (this.last = build))
      .catch((err: unknown) => {
        if (!this.stopped) this.options.log?.warn({ err }, `reading running containers for ${CONTAINER_INFO_METRIC} failed`);
        return (this.last = undefined);
      })
      .finally(() => (this.building = undefined));
    return this.building;
  }

  private async read(at: number): Promise<Build> {
    const pages: Buffer[] = [];
    let cursor: string | undefined;
    do {
      // The SQLite store answers synchronously, so without this the whole read ran as one block.
      if (pages.length > 0) await nextTurn();
      if (this.stopped) throw new Error('stopped');
      const page = await this.options.store.scanContainers({ state: 'running' }, { limit: this.pageSize, cursor });
      pages.push(Buffer.from(page.items.map(sampleLine).join('')));
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return { at, pages };
  }
}

function sampleLine(c: ContainerRecord): string {
  return (
    `${CONTAINER_INFO_METRIC}{container_id="${escapeLabel(c.container_id)}",container_name="${escapeLabel(c.container_name)}",` +
    `task_id="${escapeLabel(c.task_id)}",task_family="${escapeLabel(c.task_family)}",task_revision="${escapeLabel(c.task_version)}",` +
    `cluster="${escapeLabel(c.cluster)}",instance_id="${escapeLabel(c.instance_id)}"} 1\n`
  );
}

/** A label value in the text format: backslash, double quote and line feed escaped; null is empty. */
export function escapeLabel(value: string | null): string {
  if (value === null) return '';
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}

/** HELP text: backslash and line feed escaped. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
