import type { RedisConnection } from '../redis-client.ts';
import { z } from 'zod';

/**
 * The outcome of the last base-backup run per target, kept in Redis by the base-backup worker (storage knows only
 * the ones that succeeded), and when the bot first watched the target's base backups: health's `base-backup`
 * condition reads both.
 */
export interface BaseBackupRun {
  ok: boolean;
  at: Date;
  reason: string | null;
  jobId: string | null;
}

const Stored = z.object({ ok: z.boolean(), at: z.string(), reason: z.string().nullable(), jobId: z.string().nullable() });
const runKey = (prefix: string, target: string) => `${prefix}:last-run:base-backup:${target}`;

export async function recordBaseBackupRun(redis: RedisConnection, prefix: string, target: string, run: BaseBackupRun): Promise<void> {
  await redis.set(runKey(prefix, target), JSON.stringify({ ...run, at: run.at.toISOString() }));
}

export async function lastBaseBackupRun(redis: RedisConnection, prefix: string, target: string): Promise<BaseBackupRun | null> {
  const raw = await redis.get(runKey(prefix, target));
  if (raw === null) return null;
  const parsed = Stored.safeParse(JSON.parse(raw));
  return parsed.success ? { ...parsed.data, at: new Date(parsed.data.at) } : null;
}

/** When the bot first looked at this target's base backups (set by the first call): a restart never pushes it back. */
export async function baseBackupsWatchedSince(redis: RedisConnection, prefix: string, target: string, now: Date): Promise<Date> {
  const key = `${prefix}:first-seen:base-backup:${target}`;
  await redis.set(key, now.toISOString(), 'NX');
  const at = Date.parse((await redis.get(key)) ?? '');
  return Number.isNaN(at) ? now : new Date(at);
}
