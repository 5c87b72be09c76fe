import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/bench/**', 'node_modules/**'],
    // Forks, not threads: tests spawn processes and send signals, which wants real processes.
    pool: 'forks',
    // Two cores here; every file also talks to one PostgreSQL, so more workers only queue.
    maxWorkers: 2,
    // Starts (or finds) the database and builds the migrated template every test copies.
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
