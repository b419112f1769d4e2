// Generates the configuration reference (docs/configuration.md, and the tables in README.md between
// `<!-- config:COMMAND -->` markers) from the flag declarations in config/, so the docs cannot drift.
// Run: node dist/tools/gen-config-docs.js (npm run docs:config). test/docs.test.ts checks it is current.
import { readFileSync, writeFileSync } from 'node:fs';
import { commands, envName } from '../config/index.js';
import type { FlagSpec } from '../config/flags.js';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function flagTable(flags: FlagSpec[]): string {
  const rows = ['| flag | env | default | meaning |', '|---|---|---|---|'];
  for (const f of flags) {
    const def = f.required ? '**required**' : f.default !== undefined && f.default !== '' ? `\`${f.secret ? '***' : f.default}\`` : '';
    const kind = f.kind === 'boolean' ? '' : f.kind === 'list' ? ' VALUE' : ` <${f.kind}>`;
    const repeat = f.kind === 'list' ? ' (repeatable)' : '';
    rows.push(`| \`--${f.name}${cell(kind)}\`${repeat} | \`${envName(f.name)}\` | ${cell(def)} | ${cell(f.help)} |`);
  }
  return rows.join('\n');
}

export function configurationMarkdown(): string {
  const parts = [
    '# Configuration reference',
    '',
    '_Generated from `config/index.ts` by `npm run docs:config`; do not edit by hand._',
    '',
    'Every flag can also be set with the environment variable shown (the flag wins). Durations take `250ms`, `10s`,',
    '`5m`, `1h` or a bare number of seconds. A missing or malformed value stops the command with one readable line',
    'and exit code 2. Repeatable flags read their env var as a comma-separated list; in `ECS_ID_MAPPER_LINK` a',
    'comma starts the next link only before `NAME=`, so a template may hold commas. An `ECS_ID_MAPPER_*` variable',
    'that is no command\'s setting (a misspelt name) is ignored with a warning on stderr naming the closest setting.',
  ];
  for (const c of Object.values(commands)) {
    parts.push('', `## \`ecs-id-mapper ${c.name} ${c.usage}\``, '', c.summary, '', flagTable(c.flags));
  }
  return parts.join('\n') + '\n';
}

/** Replaces each `<!-- config:NAME -->...<!-- /config:NAME -->` block of README text with that command's table. */
export function readmeWithTables(readme: string): string {
  return readme.replace(/<!-- config:([a-z-]+) -->[\s\S]*?<!-- \/config:\1 -->/g, (_all, name: string) => {
    const c = (commands as Record<string, { flags: FlagSpec[] }>)[name];
    if (!c) throw new Error(`README names an unknown command: ${name}`);
    return `<!-- config:${name} -->\n${flagTable(c.flags)}\n<!-- /config:${name} -->`;
  });
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isMain) {
  const root = new URL('../../', import.meta.url);
  writeFileSync(new URL('docs/configuration.md', root), configurationMarkdown());
  const readmePath = new URL('README.md', root);
  writeFileSync(readmePath, readmeWithTables(readFileSync(readmePath, 'utf8')));
  console.log('wrote docs/configuration.md and README.md tables');
}
