import { randomBytes } from 'node:crypto';
import type { RedisConnection } from '../redis-client.ts';
import { z } from 'zod';

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
