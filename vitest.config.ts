import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests share one throwaway PostgreSQL and Redis; each test uses its own databases and queue names.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
