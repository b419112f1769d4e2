// Builds the metrics reference tables of docs/metrics.md from live /metrics expositions, so the
// reference lists exactly what the processes expose (name, type, labels, help).
export interface MetricFamily {
  name: string;
  type: string;
  help: string;
  labels: string[];
}

const RESERVED = new Set(['le', 'quantile']);

export function families(exposition: string, prefix = 'ecs_id_mapper_'): MetricFamily[] {
  const byName = new Map<string, MetricFamily>();
  const family = (name: string) => {
    let f = byName.get(name);
    if (!f) byName.set(name, (f = { name, type: 'untyped', help: '', labels: [] }));
    return f;
  };
  for (const line of exposition.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      if (!meta[2].startsWith(prefix)) continue;
      if (meta[1] === 'HELP') family(meta[2]).help = meta[3];
      else family(meta[2]).type = meta[3];
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s/.exec(line);
    if (!sample || !sample[1].startsWith(prefix)) continue;
    const base = byName.has(sample[1]) ? sample[1] : sample[1].replace(/_(bucket|sum|count)$/, '');
    const f = byName.get(base);
    if (!f || !sample[2]) continue;
    for (const m of sample[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) {
      if (!RESERVED.has(m[1]) && !f.labels.includes(m[1])) f.labels.push(m[1]);
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function referenceTable(list: MetricFamily[]): string {
  const rows = ['| metric | type | labels | meaning |', '|---|---|---|---|'];
  for (const f of list) {
    rows.push(`| \`${f.name}\` | ${f.type} | ${f.labels.map((l) => `\`${l}\``).join(', ')} | ${f.help.replace(/\|/g, '\\|')} |`);
  }
  return rows.join('\n');
}

/** Replaces the block between `<!-- metrics:NAME -->` markers. */
export function withTable(doc: string, name: string, table: string): string {
  const start = `<!-- metrics:${name} -->`;
  const end = `<!-- /metrics:${name} -->`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i === -1 || j < i) throw new Error(`docs/metrics.md has no ${start} block`);
  return `${doc.slice(0, i + start.length)}\n${table}\n${doc.slice(j)}`;
}
