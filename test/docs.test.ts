import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configurationMarkdown, readmeWithTables } from '../tools/gen-config-docs.js';
import { alertProblems, defaultProblems, envProblems, flagCatalogue, flagProblems, linkProblems, metricFamilies, metricProblems, npmScriptProblems, pathProblems, sectionProblems, sourceFolders, type Doc } from './support/doc-checks.js';

const root = new URL('../', import.meta.url);
const rootDir = fileURLToPath(root);

describe('generated configuration docs', () => {
  it('docs/configuration.md matches the flags declared in config/ (run npm run docs:config)', () => {
    expect(readFileSync(new URL('docs/configuration.md', root), 'utf8')).toBe(configurationMarkdown());
  });

  it("README's configuration tables match the flags declared in config/ (run npm run docs:config)", () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    expect(readme).toContain('<!-- config:server -->');
    expect(readme).toContain('<!-- config:reconciler -->');
    expect(readme).toBe(readmeWithTables(readme));
  });
});

// What an operator reads first: the README keeps these, whatever else changes.
describe('README', () => {
  const readme = readFileSync(new URL('README.md', root), 'utf8');

  it('says what the project is, how to run the demo and the tests, and how to run the benchmarks', () => {
    expect(readme).toMatch(/^# ECS ID Mapper\n\nA live, queryable map between Amazon ECS tasks and the Docker containers/);
    expect(readme).toContain('npm ci && npm run demo');
    expect(readme).toContain('npm ci && npm test');
    expect(readme).toMatch(/^## Benchmarks$/m);
    expect(readme).toContain('npm run bench ');
  });
});

// Hand-written docs name files, headings, flags, env vars and scripts that can be renamed under
// them. Every Markdown file of the repository's root and docs/ is checked.
describe('docs match the repository', () => {
  const docs: Doc[] = [
    ...readdirSync(rootDir).filter((f) => f.endsWith('.md')),
    ...readdirSync(new URL('docs/', root)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`),
  ].map((path) => ({ path, text: readFileSync(new URL(path, root), 'utf8') }));
  // DEVELOPERS.md shows dockerd's own command line, whose flags are not ours.
  const userDocs = docs.filter((d) => d.path !== 'DEVELOPERS.md');
  const folders = sourceFolders(rootDir);
  const flags = flagCatalogue();
  const metrics = metricFamilies(readFileSync(new URL('docs/metrics.md', root), 'utf8'));
  const alerts = new Set(
    (parse(readFileSync(new URL('charts/prometheus/rules/ecs-id-mapper.rules.yml', root), 'utf8')) as { groups: Array<{ rules: Array<{ alert?: string }> }> }).groups
      .flatMap((g) => g.rules.map((r) => r.alert))
      .filter((a): a is string => a !== undefined),
  );
  const scripts = new Set(Object.keys(JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).scripts as Record<string, string>));

  it('every relative link names a file that exists, and a heading there when it has an #anchor', () => {
    expect(docs.flatMap((d) => linkProblems(d, rootDir))).toEqual([]);
  });

  it('every path under a source folder (storage/sqlite/sizes.ts, charts/ecs/) exists, with its #anchor', () => {
    expect(docs.flatMap((d) => pathProblems(d, rootDir, folders))).toEqual([]);
  });

  it('every section named in prose, (docs/operations.md, Rotate secrets), is a heading there', () => {
    expect(docs.flatMap((d) => sectionProblems(d, rootDir))).toEqual([]);
  });

  it('every flag shown with a command is one of its flags, and every other flag is ours or Node\'s', () => {
    expect(userDocs.flatMap((d) => flagProblems(d, flags))).toEqual([]);
  });

  it('every default stated beside a flag, `--retention` (7 days), is the one config/ declares', () => {
    expect(docs.flatMap((d) => defaultProblems(d))).toEqual([]);
  });

  it('every ECS_ID_MAPPER_* variable named is a setting, and every npm run script exists', () => {
    expect(docs.flatMap((d) => [...envProblems(d), ...npmScriptProblems(d, scripts)])).toEqual([]);
  });

  it('every metric named is one the server or the reconciler exposes, as docs/metrics.md lists them', () => {
    expect(docs.flatMap((d) => metricProblems(d, metrics))).toEqual([]);
  });

  it('every alert named is a rule, and the runbook and the deployment guide name every rule', () => {
    expect(docs.flatMap((d) => alertProblems(d, alerts))).toEqual([]);
    for (const path of ['docs/operations.md', 'docs/deploy.md']) {
      const text = docs.find((d) => d.path === path)!.text;
      expect([...alerts].filter((a) => !text.includes(`\`${a}\``)), `alerts ${path} does not name`).toEqual([]);
    }
  });

  it('the checks find a broken link, anchor, path, section, flag, default, env var, metric, alert and script', () => {
    const broken: Doc = {
      path: 'docs/broken.md',
      text: [
        '# Broken',
        'See [the API](api.md#no-such-heading), [gone](nowhere.md), [here](#broken) and [there](#nowhere).',
        'The sizes live in `storage/sqlite/no-such-file.ts`; see docs/operations.md#no-such-alert',
        '(docs/operations.md, Rotate secrets) and (operations.md, Rotate passwords).',
        'Run `ecs-id-mapper lookup <id> --serve http://x` or `ecs-id-mapper server --retention 1h`.',
        '```sh',
        'ecs-id-mapper reconciler \\',
        '  --server http://x --no-such-flag 1',
        'docker run --rm --whatever',
        'npm run bench:fleet -- --soak 30m --backends sqlite',
        '```',
        'Set `--purge-intervall` or ECS_ID_MAPPER_RETENTON, then `npm run no-such-script`.',
        'Records stay `--retention` (7 days), `--purge-interval` (default 5 m) apart; `--cadvisor-port` (default 9090).',
        'Then `EcsIdMapperHostStale` fires, and `EcsIdMapperHostsStale` never.',
        'Watch `ecs_id_mapper_reports_recieved_total` and `ecs_id_mapper_http_request_duration_seconds_count`.',
      ].join('\n'),
    };
    expect(linkProblems(broken, rootDir)).toEqual([
      'docs/broken.md: link to api.md#no-such-heading: docs/api.md has no heading with the anchor #no-such-heading',
      'docs/broken.md: link to nowhere.md: no file docs/nowhere.md',
      'docs/broken.md: link to #nowhere: docs/broken.md has no heading with the anchor #nowhere',
    ]);
    expect(pathProblems(broken, rootDir, folders)).toEqual([
      'docs/broken.md: names storage/sqlite/no-such-file.ts, which does not exist',
      'docs/broken.md: names docs/operations.md#no-such-alert, and docs/operations.md has no heading with that anchor',
    ]);
    expect(sectionProblems(broken, rootDir)).toEqual(['docs/broken.md: (operations.md, Rotate passwords): docs/operations.md has no such section']);
    expect(flagProblems(broken, flags)).toEqual([
      'docs/broken.md (code block): --no-such-flag is not a flag of ecs-id-mapper reconciler',
      'docs/broken.md (code block): --backends is not a flag of npm run bench:fleet',
      'docs/broken.md: `ecs-id-mapper lookup <id> --serve http://x`: --serve is not a flag of ecs-id-mapper lookup',
      'docs/broken.md: `--purge-intervall`: --purge-intervall is no flag of any command, benchmark or of Node',
    ]);
    expect(envProblems(broken)).toEqual(['docs/broken.md: ECS_ID_MAPPER_RETENTON is not a setting of any command']);
    expect(defaultProblems(broken)).toEqual([
      'docs/broken.md: --purge-interval (default 5 m): config/ declares 10m',
      'docs/broken.md: --cadvisor-port (default 9090): config/ declares 8080',
    ]);
    expect(alertProblems(broken, alerts)).toEqual(['docs/broken.md: EcsIdMapperHostsStale is not an alert of charts/prometheus/rules/']);
    expect(metricProblems(broken, metrics)).toEqual(['docs/broken.md: ecs_id_mapper_reports_recieved_total is not a metric the server or the reconciler exposes (docs/metrics.md)']);
    expect(npmScriptProblems(broken, scripts)).toEqual(['docs/broken.md: npm run no-such-script: no such script in package.json']);
  });
});
