import { hostname } from 'node:os';
import type { Config } from '../config.ts';
import { backupLockKey, tryRedisLock } from '../jobs/redis-lock.ts';
import { createRunLog } from '../health/last-runs.ts';
import { connectRedis } from './cli-redis.ts';

/** What `pg-backup-bot backup` found at the target's lock. */
export type CliBackupGate =
  | {
      kind: 'held';
      release: () => Promise<void>;
      /** The run in the bot's run log, as a worker's is: health and `check` then judge the last backup by it. */
      record: (run: { ok: boolean; reason: string | null }) => Promise<void>;
    }
  /** Another backup of the target runs: a worker's job (its id) or another CLI (`cli:host:pid`). */
  | { kind: 'busy'; holder: string }
  /** No REDIS_URL, or Redis does not answer: the backup runs unguarded (the case of Slack and Redis both down). */
  | { kind: 'unguarded'; why: string | null };

/**
 * The CLI's backup takes the same lock as the workers' (workers/backup-gates.ts), when the bot's Redis is known: a
 * backup typed in a terminal never dumps beside a scheduled one of the same target, and a scheduled one started
 * meanwhile waits for it.
 */
export async function cliBackupLock(config: Config, redisUrl: string | null, target: string): Promise<CliBackupGate> {
  if (redisUrl === null) return { kind: 'unguarded', why: null };
  const redis = await connectRedis(redisUrl, config.redisCluster);
  if (!redis) return { kind: 'unguarded', why: 'Redis at REDIS_URL does not answer' };
  // As check and retention end theirs: every reply this needs has been awaited by then.
  const close = () => redis.disconnect();
  const key = backupLockKey(config.queuePrefix, target);
  try {
    const lock = await tryRedisLock(redis, key, `cli:${hostname()}:${process.pid}`);
    if (lock) {
      const runs = createRunLog(redis, config.queuePrefix);
      const record = (run: { ok: boolean; reason: string | null }) => runs.record(target, { ...run, at: new Date(), jobId: `cli:${hostname()}` });
      return { kind: 'held', release: () => lock.release().finally(close), record };
    }
    const holder = (await redis.get(key)) ?? 'unknown';
    close();
    return { kind: 'busy', holder };
  } catch (err) {
    close();
    return { kind: 'unguarded', why: `Redis at REDIS_URL failed: ${(err as Error).message}` };
  }
}

/** "job 42 of the bot's workers" or "another `pg-backup-bot backup` (host:pid)". */
export function describeHolder(holder: string): string {
  return holder.startsWith('cli:') ? `another \`pg-backup-bot backup\` (${holder.slice(4)})` : `job ${holder} of the bot's workers`;
}
