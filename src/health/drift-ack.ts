import type { RedisConnection } from '../redis-client.ts';
import { z } from 'zod';
import type { DriftAck } from './types.ts';

/**
 * The data drift an operator acknowledged, per target: the newer backup of the pair, who and when. One key per target:
 * a newer backup's drift is a new question, so acknowledging it replaces the old answer. Kept 90 days.
 */
const Stored = z.object({ backupId: z.string(), by: z.string(), at: z.string() });
const TTL_SECONDS = 90 * 24 * 3600;

export const driftAckKey = (prefix: string, target: string) => `${prefix}:drift-ack:${target}`;

export async function readDriftAck(redis: RedisConnection, prefix: string, target: string): Promise<DriftAck | null> {
  const raw = await redis.get(driftAckKey(prefix, target));
  if (raw === null) return null;
  try {
    const parsed = Stored.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : null;
  } catch {
    // Unreadable: as if nobody had acknowledged; at worst the drift is posted again.
    return null;
  }
}

export async function writeDriftAck(redis: RedisConnection, prefix: string, target: string, ack: DriftAck): Promise<void> {
  await redis.set(driftAckKey(prefix, target), JSON.stringify(ack), 'EX', TTL_SECONDS);
}
