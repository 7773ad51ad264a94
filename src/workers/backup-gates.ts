import { DelayedError, type Job } from 'bullmq';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import { backupLockKey, tryRedisLock } from '../jobs/redis-lock.ts';
import { replacingNow } from '../jobs/replacement-marks.ts';
import { serverOf, serverSlotHolders, tryServerSlot } from '../jobs/server-slots.ts';
import type { Logger } from '../logger.ts';
import type { RedisConnection } from '../redis-client.ts';

export interface BackupGates {
  redis: RedisConnection;
  prefix: string;
  /** How long a backup waits before trying again when another backup of its target runs (default 30 s). */
  retryMs?: number;
  /** How long a backup waits for a free slot on its server: a random 2–4 s by default, so waiting jobs spread out. */
  serverRetryMs?: () => number;
}

/**
 * What a backup passes before it runs, across every worker: the target's lock (one backup per target) and then a
 * slot on its database server (config.dumpsPerServer at once; 0 means no limit). A backup that cannot pass is
 * moved back to the delayed set and tried again (BullMQ's DelayedError): it holds no worker slot while it waits.
 */
export async function throughBackupGates<T>(
  gates: BackupGates,
  o: { config: Config; job: Job<BackupJobData>; token: string | undefined; log: Logger },
  run: () => Promise<T>,
): Promise<T> {
  const { job, config } = o;
  const owner = job.id ?? 'unknown';
  const wait = async (ms: number): Promise<never> => {
    await job.moveToDelayed(Date.now() + ms, o.token);
    throw new DelayedError();
  };
  const key = backupLockKey(gates.prefix, job.data.target);
  const lock = await tryRedisLock(gates.redis, key, owner);
  if (!lock) {
    // Another backup of this target is running (a schedule's beside a manual one): wait for it, quietly.
    const holder = await gates.redis.get(key);
    o.log.info({ jobId: job.id, target: job.data.target, holder }, 'another backup of this target is running; this one waits');
    return wait(gates.retryMs ?? 30_000);
  }
  try {
    // Taken, then asked (jobs/replacement-marks.ts sets its key before it reads the lock): a replacement swapping the
    // database ends every session of it; a backup starts after the swap, of the restored database.
    const replacing = await replacingNow(gates.redis, gates.prefix, job.data.target);
    if (replacing) {
      o.log.info({ jobId: job.id, target: job.data.target, replacing }, 'a replacement of its database is swapping; this backup waits');
      return await wait(5000);
    }
    const slots = config.dumpsPerServer;
    const server = slots > 0 ? serverOf(findTarget(config, job.data.target).url) : null;
    const slot = server ? await tryServerSlot(gates.redis, gates.prefix, server, slots, owner) : null;
    if (server && !slot) {
      const holders = await serverSlotHolders(gates.redis, gates.prefix, server, slots);
      o.log.info({ jobId: job.id, target: job.data.target, server, holders }, 'its database server has its limit of dumps running; this one waits');
      return await wait(gates.serverRetryMs?.() ?? 2000 + Math.floor(Math.random() * 2000));
    }
    try {
      return await run();
    } finally {
      await slot?.release();
    }
  } finally {
    await lock.release();
  }
}
