import { z } from 'zod';
import type { RedisConnection } from '../redis-client.ts';
import { backupLockKey } from './redis-lock.ts';

/**
 * A replacement's swap ends every session of the database it replaces (swap.ts), a running pg_dump of it too. Left at
 * that, the backup failed with "the connection was lost during the backup; check the server's log" and paged (QA).
 * Around the swap, for each target whose database is the one replaced:
 * - a `replacing` key, which backups check after taking their lock (backup-gates.ts, cli/backup-lock.ts): none starts
 *   until the swap is done;
 * - a backup holding the target's lock: a mark under the holder's name, which that backup reads when it fails by a
 *   lost connection (takeEndedBy), and runs again on the restored database instead of failing and paging.
 */

const EndedBy = z.object({
  restoreJobId: z.string(),
  database: z.string(),
  /** What the database it replaced is kept as. */
  keptAs: z.string(),
  confirmedBy: z.string().nullable(),
  /** When the swap began: a backup that started after it was not ended by it. */
  at: z.string(),
});
export type EndedBy = z.infer<typeof EndedBy>;

const endedByKey = (prefix: string, holder: string) => `${prefix}:replaced-under:${holder}`;
const replacingKey = (prefix: string, target: string) => `${prefix}:replacing:${target}`;

/** A backup fails within seconds of its sessions being ended: an hour is plenty; a swap a worker died in, 10 minutes. */
const MARK_TTL_S = 3600;
const REPLACING_TTL_S = 600;

/**
 * Set up for the swap. `release(swapped)` once it is done or failed: backups may start again, and the marks of a
 * swap that did not happen are taken back. Redis failing here leaves nothing behind and is said in `failed`: the swap
 * goes on, a backup it ends then fails as before (and pages).
 */
export async function aroundSwap(
  redis: RedisConnection,
  prefix: string,
  targets: readonly string[],
  ended: EndedBy,
): Promise<{ release(swapped: boolean): Promise<void>; ended: Array<{ target: string; holder: string }>; failed?: string }> {
  const keys: string[] = [];
  const running: Array<{ target: string; holder: string }> = [];
  const release = async (swapped: boolean) => {
    const marks = swapped ? [] : running.map((r) => endedByKey(prefix, r.holder));
    if (keys.length + marks.length) await redis.del(...keys, ...marks).catch(() => undefined);
  };
  try {
    for (const target of targets) {
      keys.push(replacingKey(prefix, target));
      await redis.set(replacingKey(prefix, target), ended.restoreJobId, 'EX', REPLACING_TTL_S);
    }
    // After the keys: a backup that takes its lock from now on sees one and waits; one that holds it now is marked.
    for (const target of targets) {
      const holder = await redis.get(backupLockKey(prefix, target));
      if (!holder) continue;
      running.push({ target, holder });
      await redis.set(endedByKey(prefix, holder), JSON.stringify(ended), 'EX', MARK_TTL_S);
    }
    return { ended: running, release };
  } catch (err) {
    await release(false);
    return { ended: [], release: async () => undefined, failed: (err as Error).message };
  }
}

/** The restore job swapping the target's database now, or null: a backup that finds one waits for it. */
export function replacingNow(redis: RedisConnection, prefix: string, target: string): Promise<string | null> {
  return redis.get(replacingKey(prefix, target));
}

/**
 * What ended this backup, when a replacement's swap did (the mark, read once); null otherwise, and for an attempt
 * begun after the swap (`begunAt`, ms): that one was not ended by it.
 */
export async function takeEndedBy(redis: RedisConnection, prefix: string, holder: string, begunAt: number): Promise<EndedBy | null> {
  const raw = await redis.getdel(endedByKey(prefix, holder));
  const parsed = raw === null ? null : EndedBy.safeParse(JSON.parse(raw));
  return parsed?.success && begunAt <= Date.parse(parsed.data.at) ? parsed.data : null;
}
