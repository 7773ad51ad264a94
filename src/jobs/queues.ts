import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { z } from 'zod';
import { TargetName } from '../config.ts';
import { BackupKind } from '../storage/manifest.ts';

/** Queue names: one per job kind. The hash-tagged prefix keeps every key of a queue in one Redis Cluster slot. */
export const QUEUE = { backup: 'backup', pagerduty: 'pagerduty' } as const;

/** Job data sits in Redis in clear text: names and ids only, never a secret or a connection URL. */
export const BackupJobData = z.object({
  target: TargetName,
  kind: BackupKind,
  label: z.string().max(80).nullable(),
  requestedBy: z.object({
    source: z.enum(['slack', 'cli', 'schedule']),
    userId: z.string().optional(),
    userName: z.string().optional(),
  }),
  /** The channel message that this job updates in place; set on first run so a retry never posts twice. */
  anchor: z.object({ channel: z.string(), ts: z.string() }).optional(),
});
export type BackupJobData = z.infer<typeof BackupJobData>;

export const PagerJobData = z.object({ dedupKey: z.string().min(1).max(255) });
export type PagerJobData = z.infer<typeof PagerJobData>;

export interface Queues {
  backup: Queue<BackupJobData>;
  pagerduty: Queue<PagerJobData>;
  close(): Promise<void>;
}

const keepFinished: Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'> = {
  // Finished jobs are kept forever unless told otherwise; a week is plenty for /backup status.
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600, count: 1000 },
};

export function createQueues(connection: ConnectionOptions, prefix: string): Queues {
  const backup = new Queue<BackupJobData>(QUEUE.backup, { connection, prefix, defaultJobOptions: { ...keepFinished, attempts: 1 } });
  const pagerduty = new Queue<PagerJobData>(QUEUE.pagerduty, {
    connection,
    prefix,
    defaultJobOptions: {
      ...keepFinished,
      // PagerDuty outages delay a page but never lose it: keep retrying for days, backoff capped in the worker.
      attempts: 2000,
      backoff: { type: 'capped' },
    },
  });
  return {
    backup,
    pagerduty,
    async close() {
      await Promise.all([backup.close(), pagerduty.close()]);
    },
  };
}
