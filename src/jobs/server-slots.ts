import type { RedisConnection } from '../redis-client.ts';
import { tryRedisLock, type RedisLock } from './redis-lock.ts';

/**
 * A limit on concurrent dumps per database server, across every worker of the fleet (DUMPS_PER_SERVER, default 1):
 * twenty targets on one server, scheduled at 02:00, are dumped one after another instead of twenty pg_dumps at once
 * against it. A server has `slots` Redis locks; a backup holds one while it dumps. The owner is the job id, so a job
 * retried after its worker died takes its own slot back instead of waiting for it to expire.
 */

/**
 * The server a target's URL points at: `host:port`, the host lowercased, 5432 when the URL names no port, a
 * socket directory as it is. Two names for one server (`localhost`, `127.0.0.1`) count as two servers.
 */
export function serverOf(url: string): string {
  const u = new URL(url);
  const host = decodeURIComponent(u.hostname || u.searchParams.get('host') || 'localhost').toLowerCase();
  return `${host}:${u.port || u.searchParams.get('port') || '5432'}`;
}

export const serverSlotKey = (prefix: string, server: string, slot: number) => `${prefix}:lock:server:${server}:${slot}`;

/** One of the server's slots for `owner`, or null when all of them are held by others. */
export async function tryServerSlot(redis: RedisConnection, prefix: string, server: string, slots: number, owner: string): Promise<RedisLock | null> {
  // The owner's own slot first (a retry after a stall), then the first free one.
  const keys = Array.from({ length: slots }, (_, i) => serverSlotKey(prefix, server, i));
  const held = await Promise.all(keys.map((k) => redis.get(k)));
  const order = [...keys.filter((_, i) => held[i] === owner), ...keys.filter((_, i) => held[i] !== owner)];
  for (const key of order) {
    const lock = await tryRedisLock(redis, key, owner);
    if (lock) return lock;
  }
  return null;
}

/** Who holds the server's slots now (job ids), for the log line of a backup that waits. */
export async function serverSlotHolders(redis: RedisConnection, prefix: string, server: string, slots: number): Promise<string[]> {
  const held = await Promise.all(Array.from({ length: slots }, (_, i) => redis.get(serverSlotKey(prefix, server, i))));
  return held.filter((h): h is string => h !== null);
}
