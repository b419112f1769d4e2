import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configurationMarkdown, readmeWithTables } from '../tools/gen-config-docs.js';

const root = new URL('../', import.meta.url);

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
