// Observations held to the server's limits (WIRE_LIMITS, dockerNameFits). The loop fits what it
// observes; the reporter fits what it sends from the outbox too, since lines queued by an earlier
// version were written before these rules: sent as queued, one value over a limit made the server
// refuse every batch behind it.
import { dockerNameFits, isWellFormedText, WIRE_LIMITS } from '../wire/ids.js';
import type { ContainerObservation, PortMapping } from '../wire/index.js';

const LIMITS = WIRE_LIMITS.observation;
/** RFC 3339 as the server's date-time format takes it (Go's RFC3339Nano, which the agent sends, is one). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i;

/**
 * A value the wire can carry: longer ones are unknown (null) rather than cut into another value,
 * and so is text with a lone UTF-16 surrogate (an agent's JSON may escape one: `"\ud800"`). Sent,
 * the server refused its transition with a 400, and every later one of the host queued behind it.
 */
function upTo(max: number, s: string | null): string | null {
  return s !== null && (s.length > max || !isWellFormedText(s)) ? null : s;
}

function portFits(p: PortMapping): boolean {
  return p.protocol.length <= LIMITS.protocol && isWellFormedText(p.protocol);
}

function hostIpFits(p: PortMapping): boolean {
  return p.host_ip === undefined || p.host_ip === null || (p.host_ip.length <= LIMITS.host_ip && isWellFormedText(p.host_ip));
}

/**
 * The observation held to the server's limits (WIRE_LIMITS). A single value over a limit made the
 * server refuse the whole batch with a 400, which the reporter keeps and resends: the host reported
 * nothing more. Legal inputs go over: the agent names a container `ecs-<family>-<version>-<name>-<20 hex>`,
 * 540-odd characters for a 255-character family and name (both legal in ECS); a container port range
 * is listed port by port; labels of a container known only from Docker can hold anything.
 */
export function fitToWire(o: ContainerObservation): ContainerObservation {
  let ports = o.ports;
  if (ports.length > LIMITS.ports || ports.some((p) => !portFits(p) || !hostIpFits(p))) {
    ports = ports
      .filter(portFits)
      .slice(0, LIMITS.ports)
      .map((p) => (hostIpFits(p) ? p : { container_port: p.container_port, host_port: p.host_port, protocol: p.protocol }));
  }
  return {
    ...o,
    docker_name: o.docker_name !== null && (!dockerNameFits(o.docker_name) || !isWellFormedText(o.docker_name)) ? null : o.docker_name,
    container_name: upTo(LIMITS.container_name, o.container_name),
    image: upTo(LIMITS.image, o.image),
    task_family: upTo(LIMITS.task_family, o.task_family),
    task_version: upTo(LIMITS.task_version, o.task_version),
    desired_status: upTo(LIMITS.status, o.desired_status),
    known_status: upTo(LIMITS.status, o.known_status),
    ports,
    restart_count: Math.min(o.restart_count, WIRE_LIMITS.int32Max),
    exit_code: o.exit_code !== null && (o.exit_code > WIRE_LIMITS.int32Max || o.exit_code < -WIRE_LIMITS.int32Max - 1) ? null : o.exit_code,
    started_at: o.started_at !== null && !RFC3339.test(o.started_at) ? null : o.started_at,
  };
}
