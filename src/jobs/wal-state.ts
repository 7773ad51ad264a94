import type { Redis } from 'ioredis';

/** Where a worker writes the state of one target's WAL stream (workers/wal-archives.ts), for `/backup status`. */
export const walStateKey = (prefix: string, target: string) => `${prefix}:wal:${target}`;

/** What `/backup status` shows of one target's WAL stream, as the worker last wrote it. */
export interface StoredWalState {
  receiver: 'up' | 'down' | 'not started';
  /** The worker holding the target's WAL lease ("host pid 1234"), which wrote this state. */
  holder?: string;
  since: string;
  error?: string;
  lastArchived?: string;
  lastArchivedAt?: string;
}

export async function readWalState(redis: Redis, prefix: string, target: string): Promise<StoredWalState | null> {
  const h = await redis.hgetall(walStateKey(prefix, target));
  if (!h.receiver) return null;
  return h as unknown as StoredWalState;
}
