import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // Generous: integration suites wait for real daemons on a loaded 2-core CI machine. These are
    // correctness bounds, never performance assertions (those live in npm run bench).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration suites start real daemons (dockerd, prometheus, chromium); two cores do not
    // enjoy running all of them at once.
    maxWorkers: 2,
  },
});
