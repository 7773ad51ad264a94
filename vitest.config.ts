import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests share one throwaway PostgreSQL and Redis; each test uses its own databases and queue names.
    fileParallelism: true,
    // Three files at once on two cores: many tests spend their time waiting (a schedule's minute, a stall check),
    // not computing; with two, CI took 14 min of its 15.
    maxWorkers: 3,
  },
});
