import { z } from 'zod';
import { TargetName } from '../target-name.ts';
import { ScheduleId } from './config-schema.ts';

/**
 * What a job scheduler puts in each job it produces. The template is fixed when the scheduler is upserted, so it
 * holds names and policy only, resolved when the job runs: never a backup id (`latest` is decided at run time),
 * never a URL or a secret (job data sits in Redis in clear text).
 */

/** Shaped like BackupJobData (kind, label, requestedBy) plus the schedule that sets the retention deadline. */
export const ScheduledBackupData = z.object({
  target: TargetName,
  kind: z.literal('scheduled'),
  label: z.null(),
  requestedBy: z.object({ source: z.literal('schedule'), userName: z.string() }),
  schedule: z.object({ id: ScheduleId, retentionClass: z.enum(['daily', 'frequent', 'weekly']), keepDays: z.number().int().positive() }),
});
export type ScheduledBackupData = z.infer<typeof ScheduledBackupData>;

/** A base backup for point-in-time recovery, made by the target's `pgbb:base-backup:<target>` scheduler. */
export const ScheduledBaseBackupData = z.object({
  target: TargetName,
  label: z.null(),
  requestedBy: z.object({ source: z.literal('schedule'), userName: z.string() }),
  schedule: z.object({ id: z.literal('base-backup') }),
});
export type ScheduledBaseBackupData = z.infer<typeof ScheduledBaseBackupData>;

/** The worker tests the target's newest good backup, after checking `rule` at the scheduled time. */
export const ScheduledRestoreTestData = z.object({
  target: TargetName,
  requestedBy: z.object({ source: z.literal('schedule'), userName: z.string() }),
  schedule: z.object({ rule: z.enum(['first-saturday', 'first-saturday-of-quarter']) }),
});
export type ScheduledRestoreTestData = z.infer<typeof ScheduledRestoreTestData>;

export const RetentionJobData = z.object({ dryRun: z.boolean() });
export type RetentionJobData = z.infer<typeof RetentionJobData>;

export const ChecklistJobData = z.object({ kind: z.enum(['daily', 'weekly', 'monthly']) });
export type ChecklistJobData = z.infer<typeof ChecklistJobData>;
