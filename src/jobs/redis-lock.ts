import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { RedisConnection } from '../redis-client.ts';

/**
 * A Redis lock: a key owned by a token, with a TTL renewed while it is held, so a holder that dies frees it within
 * the TTL; only its owner renews or releases it, and the same owner asking again (a backup job retried after a
 * stall) takes it back.
 *
 * Used for one backup of a target at a time, whoever asked: `/backup now` deduplicates through BullMQ, but BullMQ
 * ignores deduplication for the jobs its schedulers make, so a scheduled backup could otherwise start a second
 * dump beside a manual one (the owner is the job id). And for a checklist message's ticks (checklists/state.ts).
 */

const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export interface RedisLock {
  release(): Promise<void>;
}

export const backupLockKey = (prefix: string, target: string) => `${prefix}:lock:backup:${target}`;

/** The lock, or null when another owner holds it (its token is then the key's value). */
export async function tryRedisLock(redis: RedisConnection, key: string, owner: string, ttlMs = 60_000): Promise<RedisLock | null> {
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

/** A worker's name as the holder of a repair claim: host and pid, and a token (pids repeat across containers). */
export const repairOwner = `worker:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

/** What a rewrite of a damaged backup (storage/copy-scrub.ts) holds: the worker's retention job and the CLI's scrub must not write one file at once. */
export const repairLockKey = (prefix: string, target: string, backupId: string) => `${prefix}:lock:repair:${target}:${backupId}`;

/**
 * Claims a damaged backup for one rewrite (the lock), or says who holds it. The owner names the process, so the
 * sentence tells an operator which scrub to wait for.
 */
export function repairClaim(redis: RedisConnection, prefix: string, owner: string) {
  return async (target: string, backupId: string): Promise<RedisLock | string> => {
    const key = repairLockKey(prefix, target, backupId);
    const lock = await tryRedisLock(redis, key, owner);
    if (lock) return lock;
    const holder = (await redis.get(key)) ?? 'another process';
    return `another repair (${holder}) is rewriting it now; the next run tries again`;
  };
}
