import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadBenchFlags } from './bench.js';

describe('benchmark flags', () => {
  it('runs quick mode by default and the full sizes with --full', () => {
    expect(loadBenchFlags('bench', []).flags).toEqual({ full: false });
    expect(loadBenchFlags('bench', ['--full']).flags).toEqual({ full: true });
    expect(loadBenchFlags('bench:growth', ['--full']).flags.full).toBe(true);
    expect(loadBenchFlags('bench:reconciler', []).flags.full).toBe(false);
  });

  it('runs bench:api at full length unless --quick, as npm run bench:api always has', () => {
    expect(loadBenchFlags('bench:api', []).flags.full).toBe(true);
    expect(loadBenchFlags('bench:api', ['--quick']).flags.full).toBe(false);
  });

  it('takes --only as a comma-separated or repeated list of known benchmarks', () => {
    expect(loadBenchFlags('bench', ['--only', 'api,growth']).flags.only).toEqual(['api', 'growth']);
    expect(loadBenchFlags('bench', ['--only', 'api', '--only=fleet']).flags.only).toEqual(['api', 'fleet']);
    expect(() => loadBenchFlags('bench', ['--only', 'api,gorwth'])).toThrow('--only: unknown benchmark "gorwth" (known: api, reconciler, simpledb, fleet, growth)');
  });

  it('parses the fleet soak: a duration, one backend, a positive rate', () => {
    expect(loadBenchFlags('bench:fleet', ['--soak', '30m', '--backend', 'simpledb', '--rate', '2.5']).flags).toEqual({ full: false, soakMs: 1_800_000, backend: 'simpledb', rate: 2.5 });
    expect(() => loadBenchFlags('bench:fleet', ['--soak', 'soon'])).toThrow('--soak: not a duration: "soon"');
    expect(() => loadBenchFlags('bench:fleet', ['--backend', 'mysql'])).toThrow('--backend: expected sqlite or simpledb, got "mysql"');
    expect(() => loadBenchFlags('bench:fleet', ['--soak', '1m', '--rate', '-1'])).toThrow('--rate: expected reports per second');
    expect(() => loadBenchFlags('bench:fleet', ['--rate', '5'])).toThrow('--rate applies to soak mode only');
  });

  it('refuses what it does not know instead of running something else', () => {
    expect(() => loadBenchFlags('bench:growth', ['--ful'])).toThrow('unknown flag "--ful"');
    expect(() => loadBenchFlags('bench', ['--quick', '--full'])).toThrow('--quick and --full contradict each other');
    expect(() => loadBenchFlags('bench:simpledb', ['fast'])).toThrow('unexpected argument "fast"');
    expect(() => loadBenchFlags('bench:simpledb', ['--full'])).toThrow('unknown flag "--full"');
  });

  it('answers --help with the usage and every flag', () => {
    const { help, helpText } = loadBenchFlags('bench:fleet', ['--help']);
    expect(help).toBe(true);
    expect(helpText).toMatch(/^Usage: npm run bench:fleet -- \[flags\]/);
    for (const flag of ['--full', '--soak <duration>', '--backend <string>', '--rate <string>']) expect(helpText).toContain(flag);
  });

  it('makes a benchmark program exit 2 with one line on a bad flag, before measuring anything', () => {
    const entry = fileURLToPath(new URL('../dist/bench/growth.bench.js', import.meta.url));
    const run = spawnSync(process.execPath, [entry, '--ful'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(2);
    expect(run.stderr.trim()).toBe('bench:growth: unknown flag "--ful" (did you mean --full? see --help)');
    expect(execFileSync(process.execPath, [entry, '--help'], { encoding: 'utf8' })).toMatch(/^Usage: npm run bench:growth/);
  });
});
