import { defineConfig } from 'vitest/config';
import LongestFirst from './test/support/sequencer.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests share one throwaway PostgreSQL and Redis; each test uses its own databases and queue names.
    fileParallelism: true,
    // Four files at once on two cores: many tests spend their time waiting (a schedule's minute, a stall check),
    // not computing. With three the machine's CPU sat idle a quarter of the run (suite 396-417 s here, CI 12-13.5 min
    // of its 15); with four, 14 % idle and 342 s.
    maxWorkers: 4,
    // Files share their worker's module graph instead of loading it afresh each: module loading took 423 s of the
    // CI run's 2783 s of test time (Bolt, the AWS SDK, BullMQ, per file), 21-26 s without isolation; the suite went
    // from 12-14 to 5.5-8 minutes here. Each file still gets its own databases, queues and servers; a test that needs a
    // fresh process's state (a once-per-process sweep: orphaned-temps.test.ts) runs that part in a child process.
    isolate: false,
    // Longest files first, by test/durations.json (`npm run test:durations` rewrites it): a fresh clone has no
    // vitest cache to order by (test/support/sequencer.ts).
    sequence: { sequencer: LongestFirst },
  },
});
