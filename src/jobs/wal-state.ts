import type { Redis } from 'ioredis';

/** Where a worker writes the state of one target's WAL stream (workers/wal-archives.ts), for `/backup status`. */
export const walStateKey = (prefix: string, target: string) => `${prefix}:wal:${target}`;

/** What `/backup status` shows of one target's WAL stream, as the worker last wrote it. */
export interface StoredWalState {
  receiver: 'up' | 'down' | 'not started';
  since: string;
  error?: string;
  lastArchived?: string;
  lastArchivedAt?: string;
  /** The measured RPO (postgres/pitr/rpo-monitor.ts): the objective in seconds, and when it was last measured. */
  rpoObjectiveSeconds?: string;
  rpoMeasuredAt?: string;
  /** Since when committed WAL has been missing from the archive; absent at the last measurement: the archive held everything. */
  rpoBehindSince?: string;
  /** Why the server could not be asked: the RPO is unknown. */
  rpoError?: string;
  /** The server's WAL position, the archive's, and the worker disk's (flushed by the receiver, not yet archived). */
  currentLsn?: string;
  archivedLsn?: string;
  flushedLsn?: string;
  /** Why the last snapshot of the partial segment failed. */
  partialError?: string;
}

export async function readWalState(redis: Redis, prefix: string, target: string): Promise<StoredWalState | null> {
  const h = await redis.hgetall(walStateKey(prefix, target));
  if (!h.receiver) return null;
  return h as unknown as StoredWalState;
}
