import { hostname } from 'node:os';
import type { Config } from '../config.ts';
import { backupLockKey, tryRedisLock } from '../jobs/redis-lock.ts';
import { type EndedBy, replacingNow, takeEndedBy } from '../jobs/replacement-marks.ts';
import { createRunLog } from '../health/last-runs.ts';
import { connectRedis } from './cli-redis.ts';
import { storageMarkProblem } from '../storage/storage-mark.ts';
import type { Storage } from '../storage/types.ts';
import { swapBeside } from '../replacement-backups.ts';
import type { AroundSwap } from '../workers/full-restore.ts';

/** What `pg-backup-bot backup` found at the target's lock. */
export type CliBackupGate =
  | {
      kind: 'held';
      release: () => Promise<void>;
      /** The run in the bot's run log, as a worker's is: health and `check` then judge the last backup by it. */
      record: (run: { ok: boolean; reason: string | null }) => Promise<void>;
      /** A replacement's swap that ended it (jobs/replacement-marks.ts), asked when it failed by a lost connection. */
      endedBy: () => Promise<EndedBy | null>;
      /** Whether BACKUP_DIR is the bot's storage (storage/storage-mark.ts), as a worker asks before it dumps. */
      notOurs: (storage: Pick<Storage, 'root' | 'describe'>) => Promise<string | null>;
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
    const owner = `cli:${hostname()}:${process.pid}`;
    const lock = await tryRedisLock(redis, key, owner);
    // Taken, then asked, as the workers do (backup-gates.ts): a replacement swapping the database would end this dump.
    const replacing = lock ? await replacingNow(redis, config.queuePrefix, target) : null;
    if (lock && replacing) await lock.release();
    else if (lock) {
      const runs = createRunLog(redis, config.queuePrefix);
      const record = (run: { ok: boolean; reason: string | null }) => runs.record(target, { ...run, at: new Date(), jobId: `cli:${hostname()}` });
      const startedAt = Date.now();
      const endedBy = () => takeEndedBy(redis, config.queuePrefix, owner, startedAt).catch(() => null);
      const notOurs = (storage: Pick<Storage, 'root' | 'describe'>) => storageMarkProblem(storage, redis, config.queuePrefix);
      return { kind: 'held', release: () => lock.release().finally(close), record, endedBy, notOurs };
    }
    if (replacing) {
      close();
      return { kind: 'busy', holder: `replacement:${replacing}` };
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
  if (holder.startsWith('replacement:')) return `restore job ${holder.slice(12)} is swapping its database for a restored copy (seconds)`;
  return holder.startsWith('cli:') ? `another \`pg-backup-bot backup\` (${holder.slice(4)})` : `job ${holder} of the bot's workers`;
}

/**
 * A CLI replacement's part in holding off the bot's backups around its swap (src/replacement-backups.ts), when
 * REDIS_URL names the bot's Redis: connected at the swap (it comes after the whole restore), closed after it.
 */
export function cliAroundSwap(config: Config, redisUrl: string | null, database: string, jobId: string, serverUrl: string): AroundSwap | undefined {
  if (redisUrl === null) return undefined;
  return async (keptAs) => {
    const redis = await connectRedis(redisUrl, config.redisCluster);
    if (!redis)
      return { release: async () => undefined, notes: [`Backups of ${database} could not be held off during the swap (Redis at REDIS_URL does not answer).`] };
    const around = await swapBeside({ redis, prefix: config.queuePrefix }, config, { into: { database }, confirmedBy: null }, jobId, serverUrl)?.(keptAs);
    return { notes: around?.notes ?? [], release: (swapped) => (around?.release(swapped) ?? Promise.resolve()).finally(() => redis.disconnect()) };
  };
}
