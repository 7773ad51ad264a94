import type { Job } from 'bullmq';
import type { RestoreTestJobData } from '../jobs/queues.ts';
import { formatInZone, shouldRunToday } from '../schedules/index.ts';
import type { Config } from '../config.ts';

/** Where scratch databases are made for a target: the restore-test server from config, else the target's own. */
export function scratchServerUrl(config: Config, targetUrl: string): string {
  return config.restoreTest.serverUrl ?? targetUrl;
}

/** What every restore test and full restore takes from the config: one list, for the worker, the CLI and full restores. */
export function restoreTestSettings(config: Config) {
  return {
    scratchScope: config.queuePrefix,
    jobs: config.restoreTest.jobs,
    smokeQueries: config.restoreTest.smokeQueries,
    ...(config.pgBinDir ? { pgBinDir: config.pgBinDir } : {}),
    // Only restores read the secret key; the backup workers never do.
    identityFile: config.encryption.identityFile,
  };
}

/**
 * Why a scheduled test does nothing this time, or null. Judged on the day it was scheduled for (BullMQ's
 * `prevMillis`), not when a worker got to it: a test delayed past midnight by an outage still runs.
 */
export function notItsDay(job: Job<RestoreTestJobData>, tz: string): string | null {
  const rule = job.data.schedule?.rule;
  if (!rule) return null;
  const scheduledFor = new Date(job.opts.prevMillis ?? job.timestamp);
  if (shouldRunToday(rule, scheduledFor, tz)) return null;
  return `${formatInZone(scheduledFor, tz)} is not the ${rule === 'first-saturday' ? 'first Saturday of a month' : 'first Saturday of a quarter'}`;
}
