import { z } from 'zod';
import type { RedisConnection } from '../redis-client.ts';
import { backupLockKey, type RedisLock, tryRedisLock } from './redis-lock.ts';

/**
 * A replacement's swap ends every session of the database it replaces (swap.ts), a running pg_dump of it too. Left at
 * that, the backup failed with "the connection was lost during the backup; check the server's log" and paged (QA).
 * Around the swap, for each target whose database is the one replaced:
 * - no backup of it running: its backup lock is held until the swap is done, so none starts in the middle;
 * - one running (the lock's holder): a mark is left under that holder's name, which its failure reads (takeEndedBy)
 *   to say what ended it instead, without paging.
 */

const EndedBy = z.object({ restoreJobId: z.string(), database: z.string(), confirmedBy: z.string().nullable(), at: z.string() });
export type EndedBy = z.infer<typeof EndedBy>;

const endedByKey = (prefix: string, holder: string) => `${prefix}:replaced-under:${holder}`;

/** A day: a backup ends within seconds of its sessions being ended; the mark must not outlive its meaning by much. */
const MARK_TTL_S = 86_400;

/** Held for the swap: release() once it is done (or failed); `ended`: the backups it ends, by target and holder. */
export async function aroundSwap(
  redis: RedisConnection,
  prefix: string,
  targets: readonly string[],
  ended: EndedBy,
): Promise<{ release(): Promise<void>; ended: Array<{ target: string; holder: string }> }> {
  const held: RedisLock[] = [];
  const running: Array<{ target: string; holder: string }> = [];
  for (const target of targets) {
    const key = backupLockKey(prefix, target);
    const lock = await tryRedisLock(redis, key, `replacement:${ended.restoreJobId}`);
    if (lock) {
      held.push(lock);
      continue;
    }
    const holder = await redis.get(key);
    if (!holder) continue;
    await redis.set(endedByKey(prefix, holder), JSON.stringify(ended), 'EX', MARK_TTL_S);
    running.push({ target, holder });
  }
  return {
    ended: running,
    release: async () => {
      for (const lock of held) await lock.release();
    },
  };
}

/** What ended this backup, when a replacement's swap did (read once); null otherwise. */
export async function takeEndedBy(redis: RedisConnection, prefix: string, holder: string): Promise<EndedBy | null> {
  const raw = await redis.getdel(endedByKey(prefix, holder));
  if (raw === null) return null;
  const parsed = EndedBy.safeParse(JSON.parse(raw));
  return parsed.success ? parsed.data : null;
}
