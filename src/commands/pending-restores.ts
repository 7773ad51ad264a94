import { randomBytes } from 'node:crypto';
import type { RedisConnection } from '../redis-client.ts';
import type { Queue } from 'bullmq';
import { z } from 'zod';
import { withDeadline } from '../deadline.ts';
import type { RestoreJobData } from '../jobs/queues.ts';

/**
 * A restore into an existing database waits here for its confirmation click. The button carries only the id;
 * the request itself stays server-side, so a crafted click cannot change what gets overwritten. Single use
 * (GETDEL) and short-lived.
 */
export const PendingRestore = z.object({
  target: z.string(),
  backupId: z.string(),
  tables: z.array(z.string()),
  schemas: z.array(z.string()),
  database: z.string(),
  /** A replacement: the database's oid when the confirmation was shown, so a click on it replaces that one or none. */
  oid: z.number().int().optional(),
  requestedBy: z.object({ userId: z.string(), userName: z.string() }),
});
export type PendingRestore = z.infer<typeof PendingRestore>;

const TTL_SECONDS = 10 * 60;

const key = (prefix: string, id: string) => `${prefix}:pending-restore:${id}`;

export async function savePendingRestore(redis: RedisConnection, prefix: string, req: PendingRestore): Promise<string> {
  const id = randomBytes(12).toString('hex');
  await redis.set(key(prefix, id), JSON.stringify(req), 'EX', TTL_SECONDS);
  return id;
}

export async function takePendingRestore(redis: RedisConnection, prefix: string, id: string): Promise<PendingRestore | null> {
  if (!/^[0-9a-f]{24}$/.test(id)) return null;
  const raw = await redis.getdel(key(prefix, id));
  if (raw === null) return null;
  const parsed = PendingRestore.safeParse(JSON.parse(raw));
  return parsed.success ? parsed.data : null;
}

/** A confirmed restore refused because another into the same database is queued or running: which, and what to do. */
export async function restoreAlreadyThere(queue: Queue<RestoreJobData>, jobId: string, database: string, server: string): Promise<string> {
  const other = await withDeadline(1000, queue.getJob(jobId), 'looking the other restore up').catch(() => undefined);
  const what = other?.data ? ` from \`${other.data.backupId}\`${other.data.requestedBy.userId ? ` (asked by <@${other.data.requestedBy.userId}>)` : ''}` : '';
  return `:no_entry: Another restore into \`${database}\` on ${server} is queued or running: job \`${jobId}\`${what}. Nothing was started and this confirmation is used up; once its verdict is posted, run \`/restore\` again if it is still needed.`;
}
