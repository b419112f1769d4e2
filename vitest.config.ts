import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Integration suites start real daemons (dockerd, prometheus, chromium); two cores do not
    // enjoy running all of them at once.
    maxWorkers: 2,
  },
});
