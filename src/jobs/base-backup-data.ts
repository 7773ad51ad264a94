import { z } from 'zod';
import { RequestedBy } from '../storage/manifest.ts';
import { TargetName } from '../target-name.ts';
import { Anchor } from './checklist-data.ts';

/**
 * A base backup for point-in-time recovery, as a job of the `base-backup` queue: from `/backup now --physical`, the
 * target's scheduler (`pgbb:base-backup:<target>`, schedules/plan.ts) or a worker's start (the first one). Names
 * only: the replication URL stays in the config.
 */
export const BaseBackupJobData = z.object({
  target: TargetName,
  /** Why it ran at an odd hour ("first base backup"); null otherwise. */
  label: z.string().max(80).nullable(),
  requestedBy: RequestedBy,
  /** Set by the scheduler that made this job. */
  schedule: z.object({ id: z.literal('base-backup') }).optional(),
  /** The channel message this job updates in place; set on first run so a retry never posts twice. */
  anchor: Anchor.optional(),
});
export type BaseBackupJobData = z.infer<typeof BaseBackupJobData>;

/** Worker-side lock: one base backup of a target at a time, whoever asked (jobs/redis-lock.ts). */
export const baseBackupLockKey = (prefix: string, target: string) => `${prefix}:lock:base-backup:${target}`;
