// Renders the configured `--link NAME=TEMPLATE` links for one container. Placeholder values are
// URL-encoded; a link whose placeholders have no value for this record (e.g. no instance IP yet)
// is left out rather than rendered with holes.
//
// {instance_ip} is the host part of most templates (cAdvisor's is), so it must be an IP address:
// reports are open without --report-token, and a reported "instance IP" naming another site made
// the page's cAdvisor link, and /cadvisor?redir=true, send people there. Any other value leaves the
// link out; an IPv6 address goes in brackets, as a URL's host needs.
import { isIP } from 'node:net';
import type { LinkTemplate } from '../config/index.js';
import type { ContainerRecord } from '../storage/store.js';

export interface Link {
  name: string;
  url: string;
}

/** The instance IP as a URL host: an IPv4 address as it is, an IPv6 one in brackets; null for anything else. */
function instanceIpHost(ip: string | null): string | null {
  if (ip === null) return null;
  const family = isIP(ip);
  return family === 4 ? ip : family === 6 ? `[${ip}]` : null;
}

function placeholderValues(record: ContainerRecord, cadvisorPort: number): Record<string, string | null> {
  return {
    container_id: record.container_id,
    container_id_short: record.container_id.slice(0, 12),
    task_id: record.task_id,
    instance_ip: instanceIpHost(record.instance_ip),
    instance_id: record.instance_id,
    cluster: record.cluster,
    cadvisor_port: String(cadvisorPort),
  };
}

export function renderLinks(record: ContainerRecord, templates: LinkTemplate[], cadvisorPort: number): Link[] {
  const values = placeholderValues(record, cadvisorPort);
  const links: Link[] = [];
  // cadvisor first, then the rest in configured order (the contract of ContainerView.links).
  const ordered = [...templates.filter((t) => t.name === 'cadvisor'), ...templates.filter((t) => t.name !== 'cadvisor')];
  for (const t of ordered) {
    let missing = false;
    const url = t.template.replace(/\{([a-z_]+)\}/g, (_, key: string) => {
      const v = values[key];
      if (v === null || v === undefined || v === '') {
        missing = true;
        return '';
      }
      // The bracketed IPv6 host is a URL's own syntax; an IPv4 address needs no encoding.
      return key === 'instance_ip' ? v : encodeURIComponent(v);
    });
    if (!missing) links.push({ name: t.name, url });
  }
  return links;
}
