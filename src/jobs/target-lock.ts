import type { Redis } from 'ioredis';

/**
 * One backup of a target at a time, whoever asked. `/backup now` deduplicates through BullMQ, but BullMQ ignores
 * deduplication for the jobs its schedulers make, so a scheduled backup could otherwise start a second dump
 * beside a manual one. The lock is a Redis key owned by the job id, with a TTL renewed while the backup runs, so
 * a worker that dies frees it within the TTL; the same job retried after a stall takes its own lock back.
 */

const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export interface TargetLock {
  release(): Promise<void>;
}

export const backupLockKey = (prefix: string, target: string) => `${prefix}:lock:backup:${target}`;

/** The lock, or null when another job holds it (that job's id is then in the key). */
export async function tryTargetLock(redis: Redis, key: string, owner: string, ttlMs = 60_000): Promise<TargetLock | null> {
  const taken = (await redis.set(key, owner, 'PX', ttlMs, 'NX')) === 'OK' || Number(await redis.eval(RENEW, 1, key, owner, String(ttlMs))) === 1;
  if (!taken) return null;
  const timer = setInterval(() => void redis.eval(RENEW, 1, key, owner, String(ttlMs)).catch(() => undefined), Math.floor(ttlMs / 3));
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await redis.eval(RELEASE, 1, key, owner).catch(() => undefined);
    },
  };
}
