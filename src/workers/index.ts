import { Worker } from 'bullmq';
import type { Deps } from '../deps.ts';
import { QUEUE, type BackupJobData, type PagerJobData } from '../jobs/queues.ts';
import { backupProcessor } from './backup-worker.ts';
import { cappedBackoff, pagerDutyProcessor } from './pagerduty-worker.ts';

export interface Workers {
  close(): Promise<void>;
}

export interface WorkerOptions {
  backupConcurrency?: number;
  progressIntervalMs?: number;
}

/** Starts one BullMQ worker per job kind on the shared Redis; more hosts running `worker` scale out. */
export async function startWorkers(deps: Deps, options: WorkerOptions = {}): Promise<Workers> {
  const { config, log } = deps;
  const prefix = config.queuePrefix;
  const backup = new Worker<BackupJobData>(
    QUEUE.backup,
    backupProcessor({
      config,
      storage: deps.storage,
      notifier: deps.notifier,
      escalation: deps.escalation,
      log: log.child({ worker: 'backup' }),
      ...(options.progressIntervalMs !== undefined ? { progressIntervalMs: options.progressIntervalMs } : {}),
    }),
    // A dump holds a lock renewed while the event loop runs; hours-long children are fine.
    { connection: deps.workerRedis, prefix, concurrency: options.backupConcurrency ?? 2, maxStalledCount: 1 },
  );
  const pager = new Worker<PagerJobData>(
    QUEUE.pagerduty,
    pagerDutyProcessor({ redis: deps.workerRedis, prefix, client: deps.pagerDuty, log: log.child({ worker: 'pagerduty' }) }),
    { connection: deps.workerRedis, prefix, concurrency: 1, settings: { backoffStrategy: (attemptsMade: number) => cappedBackoff(attemptsMade) } },
  );
  // Events of one dedup key must leave in order: one delivery at a time across every worker host.
  await deps.queues.pagerduty.setGlobalConcurrency(1);
  for (const w of [backup, pager]) {
    w.on('error', (err) => log.error({ err, worker: w.name }, 'worker error'));
    w.on('failed', (job, err) => log.warn({ jobId: job?.id, worker: w.name, reason: err.message }, 'job failed'));
  }
  await Promise.all([backup.waitUntilReady(), pager.waitUntilReady()]);
  return {
    async close() {
      await Promise.all([backup.close(), pager.close()]);
    },
  };
}
