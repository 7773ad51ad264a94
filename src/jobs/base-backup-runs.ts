import type { RedisConnection } from '../redis-client.ts';
import { z } from 'zod';

/**
 * The outcome of the last run per target of the jobs whose successes storage alone cannot tell apart from never
 * having run, kept in Redis by their workers: base backups (storage knows only the ones that succeeded) and PITR
 * restore tests (which leave no record in storage). Health's `base-backup` and `pitr-test-failing` conditions read
 * them; for base backups also when the bot first watched the target.
 */
export interface BaseBackupRun {
  ok: boolean;
  at: Date;
  reason: string | null;
  jobId: string | null;
}
export type JobRun = BaseBackupRun;
type RunKind = 'base-backup' | 'pitr-test';

const Stored = z.object({ ok: z.boolean(), at: z.string(), reason: z.string().nullable(), jobId: z.string().nullable() });
const runKey = (prefix: string, kind: RunKind, target: string) => `${prefix}:last-run:${kind}:${target}`;

async function recordRun(redis: RedisConnection, prefix: string, kind: RunKind, target: string, run: JobRun): Promise<void> {
  await redis.set(runKey(prefix, kind, target), JSON.stringify({ ...run, at: run.at.toISOString() }));
}

async function lastRun(redis: RedisConnection, prefix: string, kind: RunKind, target: string): Promise<JobRun | null> {
  const raw = await redis.get(runKey(prefix, kind, target));
  if (raw === null) return null;
  const parsed = Stored.safeParse(JSON.parse(raw));
  return parsed.success ? { ...parsed.data, at: new Date(parsed.data.at) } : null;
}

export const recordBaseBackupRun = (redis: RedisConnection, prefix: string, target: string, run: BaseBackupRun) =>
  recordRun(redis, prefix, 'base-backup', target, run);
export const lastBaseBackupRun = (redis: RedisConnection, prefix: string, target: string) => lastRun(redis, prefix, 'base-backup', target);
/** A PITR restore test's outcome: `ok` when it passed; `reason` the failed check, or why it could not run. */
export const recordPitrTestRun = (redis: RedisConnection, prefix: string, target: string, run: JobRun) => recordRun(redis, prefix, 'pitr-test', target, run);
export const lastPitrTestRun = (redis: RedisConnection, prefix: string, target: string) => lastRun(redis, prefix, 'pitr-test', target);

/** When the bot first looked at this target's base backups (set by the first call): a restart never pushes it back. */
export async function baseBackupsWatchedSince(redis: RedisConnection, prefix: string, target: string, now: Date): Promise<Date> {
  const key = `${prefix}:first-seen:base-backup:${target}`;
  await redis.set(key, now.toISOString(), 'NX');
  const at = Date.parse((await redis.get(key)) ?? '');
  return Number.isNaN(at) ? now : new Date(at);
}
