// When the server retires silent hosts (Store.retireSilentHosts): a terminated instance sends no
// last report, so a host silent longer than --host-gone-after is taken for gone. Two guards keep a
// silence that is the server's or the network's from reading as a fleet of terminated instances
// (after such an outage every host's records would be marked gone, and come back only with the
// hosts' next full snapshots):
// - none is retired until this server has been up for --host-gone-after: hosts cannot report to a
//   server that is down. Up-time is measured on a monotonic clock: a step of the wall clock (NTP
//   setting a clock that booted behind) is no up-time, and every host's last report then looks
//   as old as the step;
// - none is retired while no host at all has reported within --host-stale-after: the server then
//   hears nobody, which is its network or its load balancer, not scale-in.
// A fleet that scales down from 10 hosts to 2 has 8 retired, as long as the 2 report. A partition
// that silences some hosts for longer than --host-gone-after retires those: that is cheap to get
// wrong, as their records still answer lookups and come back with their next snapshot.
import type { Logger } from 'pino';
import type { RetiredHosts, Store } from '../storage/store.js';
import { silentPastGoneAfter, someHostReporting } from './fleet-metrics.js';

export interface HostRetirementOptions {
  store: Store;
  /** --host-gone-after; 0 never retires. */
  goneAfterMs: number;
  /** --host-stale-after: some host must have reported within it. */
  staleAfterMs: number;
  /** How long this server has been up, in ms on a monotonic clock (performance.now()), never the wall clock's difference. */
  upForMs: number;
  log: Pick<Logger, 'info' | 'warn'>;
}

export type RetirementOutcome =
  | { kind: 'disabled' | 'warming_up' }
  | { kind: 'held'; silent: number; hosts: number }
  | ({ kind: 'retired' } & RetiredHosts);

export async function retireSilentHosts(o: HostRetirementOptions, nowMs: number): Promise<RetirementOutcome> {
  if (o.goneAfterMs <= 0) return { kind: 'disabled' };
  if (o.upForMs < o.goneAfterMs) return { kind: 'warming_up' };
  const silentSince = nowMs - o.goneAfterMs;
  const hosts = await o.store.listHosts();
  const silent = hosts.filter((h) => silentPastGoneAfter(h, nowMs, o.goneAfterMs)).length;
  if (silent === 0) return { kind: 'retired', containers: 0, forgottenHosts: 0 };
  if (!someHostReporting(hosts, nowMs, o.staleAfterMs)) {
    o.log.warn({ silent, hosts: hosts.length, host_stale_after_s: o.staleAfterMs / 1000 }, 'no host has reported within --host-stale-after: not retiring any (a network or server problem, not scale-in)');
    return { kind: 'held', silent, hosts: hosts.length };
  }
  const retired = await o.store.retireSilentHosts(new Date(silentSince), new Date(nowMs));
  if (retired.containers > 0 || retired.forgottenHosts > 0) {
    o.log.info({ containers: retired.containers, forgotten_hosts: retired.forgottenHosts, host_gone_after_s: o.goneAfterMs / 1000 }, 'retired hosts silent longer than --host-gone-after');
  }
  return { kind: 'retired', ...retired };
}
