import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { BackupRunSummary } from './types.ts';

const Stored = z.object({ ok: z.boolean(), at: z.string(), reason: z.string().nullable(), jobId: z.string().nullable() });

/**
 * The outcome of the last backup run per target, kept in Redis by the backup worker: storage only knows the
 * backups that succeeded, and "the last run failed" is what a health check must not miss.
 */
export interface RunLog {
  record(target: string, run: BackupRunSummary): Promise<void>;
  last(target: string): Promise<BackupRunSummary | null>;
  /** Failed runs since this Redis began counting: shared by every process, so any /metrics reports them all. */
  failures(target: string): Promise<number>;
}

export function createRunLog(redis: Redis, prefix: string): RunLog {
  const key = (target: string) => `${prefix}:last-run:backup:${target}`;
  return {
    async record(target, run) {
      await redis.set(key(target), JSON.stringify({ ...run, at: run.at.toISOString() }));
      if (!run.ok) await redis.incr(`${key(target)}:failures`);
    },
    async failures(target) {
      return Number((await redis.get(`${key(target)}:failures`)) ?? 0);
    },
    async last(target) {
      const raw = await redis.get(key(target));
      if (raw === null) return null;
      const parsed = Stored.safeParse(JSON.parse(raw));
      return parsed.success ? { ...parsed.data, at: new Date(parsed.data.at) } : null;
    },
  };
}
