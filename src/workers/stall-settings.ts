import { hostname } from 'node:os';

/**
 * How soon a job whose worker died (SIGKILL, OOM, host lost) is retried: BullMQ's lock on a running job and its
 * stalled-job check. Measured here (BullMQ 6.7, 2026-12, 2 busy cores): a worker process that holds a job is
 * SIGKILLed, and the job is taken over by a worker restarted at once (a supervisor) or one already running (another
 * host); and end to end, `pg-backup-bot worker` killed mid-dump and started again (test/e2e/killed-backup.test.ts):
 *
 *                                              bare BullMQ workers            pg-backup-bot worker, mid-dump
 *   BullMQ's defaults, lock 30 s, check 30 s:  30–76 s (13 runs, 60 typical)  60.1 s (2 runs; issue 11 saw 61 s)
 *   ours, lock 10 s, check 3 s:                6.0–11.3 s (8 runs)            9.1–12.1 s (5 runs)
 *
 * Why: only the stalled-job check retries a job, and one check runs per stalledInterval across all the workers of a
 * queue (a Redis key holds the others off, even one set by the worker that then died). It moves a job whose lock is
 * gone and that the check before had already seen active, so the delay is the lock running out (at most lockDuration
 * after the last renewal) plus up to one or two intervals.
 *
 * What it costs: BullMQ renews a running job's lock every lockDuration / 2 (lockRenewTime's default; its timer ticks
 * every quarter), so a worker whose event loop or Redis connection stops for more than about 5 s (was 15 s) loses
 * the lock and its job is retried beside it: BullMQ refuses the first run's end, and the retry removes the directory
 * that run is writing (backup-attempts.ts), so it fails, and says so in the channel before the retry's verdict.
 * The longest event-loop stall measured in a worker during a backup of a 325 MB database was 0.17 s (age in the
 * process or as the CLI); ioredis reconnects within 2 s. A Redis failover longer than 5–10 s does now retry running
 * jobs (it did past 15–30 s). The checks cost one short Lua script per queue per worker every 3 s, and one lock
 * renewal per running job every 5 s.
 */
export const LOCK_DURATION_MS = 10_000;
export const STALLED_INTERVAL_MS = 3_000;

/** BullMQ worker options for jobs whose workers may die mid-run; tests pass shorter times. */
export function stallOptions(o: { lockDurationMs?: number | undefined; stalledIntervalMs?: number | undefined; maxStalledCount?: number | undefined }) {
  const lockDuration = o.lockDurationMs ?? LOCK_DURATION_MS;
  return {
    lockDuration,
    // Never longer than the lock: a shorter lock given by a test is not held back by a longer interval.
    stalledInterval: o.stalledIntervalMs ?? Math.min(STALLED_INTERVAL_MS, lockDuration),
    // One retry (the anchor is reused), then a deferred failure that lost-jobs.ts reports.
    maxStalledCount: o.maxStalledCount ?? 1,
  };
}

/** The name a worker gives BullMQ, which records it on each job it runs (`processedBy`): which host and process ran what. */
export const workerName = () => `${hostname()}:${process.pid}`;
