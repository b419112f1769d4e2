// `--link NAME=TEMPLATE`: links shown for each container (cAdvisor first, by default).
import { ConfigError } from './flags.js';

export const LINK_PLACEHOLDERS = [
  'container_id',
  'container_id_short',
  'task_id',
  'instance_ip',
  'instance_id',
  'cluster',
  'cadvisor_port',
] as const;
export type LinkPlaceholder = (typeof LINK_PLACEHOLDERS)[number];

export interface LinkTemplate {
  name: string;
  template: string;
}

export const DEFAULT_CADVISOR_LINK: LinkTemplate = {
  name: 'cadvisor',
  template: 'http://{instance_ip}:{cadvisor_port}/docker/{container_id}',
};

const NAME = /^[a-z][a-z0-9_-]{0,63}$/;
/** Links are opened in a browser and redirected to (`/cadvisor?redir=true`): web URLs only. */
const WEB_URL = /^https?:\/\//i;

/** Parses repeated `NAME=TEMPLATE` values; a `cadvisor` entry replaces the default one. */
export function parseLinks(values: string[]): LinkTemplate[] {
  const links = new Map<string, LinkTemplate>([[DEFAULT_CADVISOR_LINK.name, DEFAULT_CADVISOR_LINK]]);
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--link: expected NAME=TEMPLATE, got "${value}"`);
    const name = value.slice(0, eq);
    const template = value.slice(eq + 1);
    if (!NAME.test(name)) throw new ConfigError(`--link: name must be lower-case letters, digits, _ or -, got "${name}"`);
    for (const m of template.matchAll(/\{([^}]*)\}/g)) {
      if (!(LINK_PLACEHOLDERS as readonly string[]).includes(m[1])) {
        throw new ConfigError(`--link ${name}: unknown placeholder {${m[1]}} (known: ${LINK_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})`);
      }
    }
    // A `javascript:` or `data:` link would run in the browser of whoever clicks it.
    if (!WEB_URL.test(template)) throw new ConfigError(`--link ${name}: the template must start with http:// or https://, got "${template.slice(0, 80)}"`);
    links.set(name, { name, template });
  }
  return [...links.values()];
}
