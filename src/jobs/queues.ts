import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { z } from 'zod';
import { TargetName } from '../target-name.ts';
import { BackupIdSchema, BackupKind, RequestedBy } from '../storage/index.ts';
import { type RetentionJobData, ScheduledBackupData, ScheduledRestoreTestData } from '../schedules/index.ts';
import { Anchor, type ChecklistJob, PreMigrationContext } from './checklist-data.ts';
import type { BaseBackupJobData } from './base-backup-data.ts';

/** Queue names: one per job kind. The hash-tagged prefix keeps every key of a queue in one Redis Cluster slot. */
export const QUEUE = {
  backup: 'backup',
  restoreTest: 'restore-test',
  restore: 'restore',
  health: 'health',
  pagerduty: 'pagerduty',
  retention: 'retention',
  checklist: 'checklist',
  baseBackup: 'base-backup',
} as const;

/** Job data sits in Redis in clear text: names and ids only, never a secret or a connection URL. */
export const BackupJobData = z.object({
  target: TargetName,
  kind: BackupKind,
  label: z.string().max(80).nullable(),
  requestedBy: RequestedBy,
  /** The channel message that this job updates in place; set on first run so a retry never posts twice. */
  anchor: Anchor.optional(),
  /** Set by the job scheduler that made this job (schedules/plan.ts): its retention class and how long it is kept. */
  schedule: ScheduledBackupData.shape.schedule.optional(),
  /** Days to keep this backup, for unscheduled kinds (a pre-migration backup: the target's policy.preMigration.keepDays). */
  keepDays: z.number().int().positive().optional(),
  /**
   * Backup ids this job's attempts reserved, recorded before each dump starts: an attempt whose worker died left
   * its unfinished directory under one of them, which the retry (or the lost-job report) removes.
   */
  attemptBackupIds: z.array(BackupIdSchema).max(20).optional(),
});
export type BackupJobData = z.infer<typeof BackupJobData>;

/** What a PITR restore test recovers to: `latest`, `random`, or a time with its offset (checked again by the worker). */
export const PitrMoment = z.string().regex(/^(latest|random|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?))$/);

/** A restore test of one backup; `latest` is resolved to a backup id when the request is made. */
export const RestoreTestJobData = z.object({
  target: TargetName,
  /** Absent in a scheduled test (the scheduler's template is fixed): the worker tests the newest backup at run time. */
  backupId: BackupIdSchema.optional(),
  /** Set by the restore-test scheduler: the day rule the worker checks before doing anything. */
  schedule: ScheduledRestoreTestData.shape.schedule.optional(),
  requestedBy: RequestedBy,
  anchor: Anchor.optional(),
  /** Set when a pre-migration backup started this test: its result then goes on to the pre-migration checklist. */
  preMigration: PreMigrationContext.optional(),
  /** A point-in-time restore test (workers/pitr-test-worker.ts): to `latest`, a `random` moment of the window, or a time with its offset. */
  pitr: z.object({ at: PitrMoment }).optional(),
  /** Asked for the latest: damaged backups newer than the one chosen (storage/catalog.ts latestGoodBackup), said in the verdict. */
  passedOver: z.array(z.object({ backupId: z.string(), why: z.string() })).optional(),
});
export type RestoreTestJobData = z.infer<typeof RestoreTestJobData>;

/** A selective restore: names only, checked again by the worker before pg_restore sees them. */
export const RestoreJobData = z.object({
  target: TargetName,
  backupId: BackupIdSchema,
  tables: z.array(z.string()),
  schemas: z.array(z.string()),
  /** `oid`: a confirmed replacement's database as confirmed; one replaced or recreated since is not replaced again. */
  into: z.object({ database: z.string(), create: z.boolean(), oid: z.number().int().optional() }),
  requestedBy: RequestedBy,
  /** Who confirmed an overwrite of an existing database (the confirmation button's clicker). */
  confirmedBy: z.string().nullable(),
  /** A whole-database restore onto RESTORE_SERVER_URL instead of the target's server, its roles applied first or not. */
  onto: z.object({ restoreServer: z.literal(true), withGlobals: z.boolean() }).optional(),
  anchor: Anchor.optional(),
});
export type RestoreJobData = z.infer<typeof RestoreJobData>;

export const PagerJobData = z.object({ dedupKey: z.string().min(1).max(255) });
export type PagerJobData = z.infer<typeof PagerJobData>;

export interface Queues {
  backup: Queue<BackupJobData>;
  restoreTest: Queue<RestoreTestJobData>;
  restore: Queue<RestoreJobData>;
  health: Queue;
  pagerduty: Queue<PagerJobData>;
  /** Deletes expired backups (schedules/plan.ts `pgbb:retention`, and `npx pg-backup-bot retention`). */
  retention: Queue<RetentionJobData>;
  /** Checklist reminders posted to the channel (`pgbb:checklist:*`, and the pre-migration checklist). */
  checklist: Queue<ChecklistJob>;
  /** Base backups for point-in-time recovery (`/backup now --physical`, `pgbb:base-backup:<target>`). */
  baseBackup: Queue<BaseBackupJobData>;
  close(): Promise<void>;
}

const keepFinished: Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'> = {
  // Finished jobs are kept forever unless told otherwise; a week is plenty for /backup status.
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600, count: 1000 },
};

/**
 * `onError` hears every queue's errors: BullMQ writes a queue's error with console.error (a stack, not a log line)
 * when nobody listens, once per queue for each failed reconnect while Redis is down. The connection's own error
 * listener (deps.ts) already says Redis is unreachable; by default these are dropped.
 */
export function createQueues(connection: ConnectionOptions, prefix: string, onError: (err: Error) => void = () => undefined): Queues {
  const backup = new Queue<BackupJobData>(QUEUE.backup, { connection, prefix, defaultJobOptions: { ...keepFinished, attempts: 1 } });
  const restoreTest = new Queue<RestoreTestJobData>(QUEUE.restoreTest, { connection, prefix, defaultJobOptions: { ...keepFinished, attempts: 1 } });
  const restore = new Queue<RestoreJobData>(QUEUE.restore, { connection, prefix, defaultJobOptions: { ...keepFinished, attempts: 1 } });
  // Health checks are cheap and repeat; keep only a short tail of them.
  const health = new Queue(QUEUE.health, {
    connection,
    prefix,
    defaultJobOptions: { removeOnComplete: { count: 50 }, removeOnFail: { count: 200 }, attempts: 1 },
  });
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
  const retention = new Queue<RetentionJobData>(QUEUE.retention, { connection, prefix, defaultJobOptions: { ...keepFinished, attempts: 1 } });
  const checklist = new Queue<ChecklistJob>(QUEUE.checklist, {
    connection,
    prefix,
    defaultJobOptions: { ...keepFinished, attempts: 3, backoff: { type: 'exponential', delay: 5000 } },
  });
  const baseBackup = new Queue<BaseBackupJobData>(QUEUE.baseBackup, { connection, prefix, defaultJobOptions: { ...keepFinished, attempts: 1 } });
  const all = [backup, restoreTest, restore, health, pagerduty, retention, checklist, baseBackup];
  for (const q of all) q.on('error', onError);
  return {
    backup,
    restoreTest,
    restore,
    health,
    pagerduty,
    retention,
    checklist,
    baseBackup,
    async close() {
      await Promise.all(all.map((q) => q.close()));
    },
  };
}
