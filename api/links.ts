// Renders the configured `--link NAME=TEMPLATE` links for one container. Placeholder values are
// URL-encoded; a link whose placeholders have no value for this record (e.g. no instance IP yet)
// is left out rather than rendered with holes.
import type { LinkTemplate } from '../config/index.js';
import type { ContainerRecord } from '../storage/store.js';

export interface Link {
  name: string;
  url: string;
}

function placeholderValues(record: ContainerRecord, cadvisorPort: number): Record<string, string | null> {
  return {
    container_id: record.container_id,
    container_id_short: record.container_id.slice(0, 12),
    task_id: record.task_id,
    instance_ip: record.instance_ip,
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
      return encodeURIComponent(v);
    });
    if (!missing) links.push({ name: t.name, url });
  }
  return links;
}
