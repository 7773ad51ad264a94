import type { RpoState } from '../postgres/pitr/rpo-monitor.ts';
import type { WalArchiveState } from '../postgres/pitr/wal-archive.ts';
import type { StoredWalState } from '../jobs/wal-state.ts';
import type { Logger } from '../logger.ts';
import type { RedisConnection } from '../redis-client.ts';

/** A target's WAL state as the worker holding its lease writes it to Redis (`<prefix>:wal:<target>`), whole. */
export async function writeState(redis: RedisConnection, key: string, s: StoredWalState, log: Logger): Promise<void> {
  await redis
    .multi()
    .del(key)
    .hset(key, Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined)) as Record<string, string>)
    .exec()
    .catch((err: unknown) => log.debug({ err }, 'WAL state not written'));
}

/** What goes to Redis: the archive's state, and the RPO measured beside it (its objective even before the first measurement). */
export const storedWalState = (s: WalArchiveState, holder: string, rpo: RpoState | null, objectiveSeconds: number): StoredWalState => ({
  holder,
  receiver: s.receiver.up ? 'up' : 'down',
  since: s.receiver.since.toISOString(),
  ...((s.receiver.error ?? s.archiveError) ? { error: s.archiveError ?? s.receiver.error } : {}),
  ...(s.lastArchived ? { lastArchived: s.lastArchived.name, lastArchivedAt: s.lastArchived.at.toISOString() } : {}),
  rpoObjectiveSeconds: String(objectiveSeconds),
  ...(rpo ? storedRpo(rpo) : {}),
});

const storedRpo = (r: RpoState): Partial<StoredWalState> => ({
  ...(r.measuredAt ? { rpoMeasuredAt: r.measuredAt.toISOString() } : {}),
  ...(r.behindSince ? { rpoBehindSince: r.behindSince.toISOString() } : {}),
  ...(r.error ? { rpoError: r.error } : {}),
  ...(r.currentLsn ? { currentLsn: r.currentLsn } : {}),
  ...(r.archivedLsn ? { archivedLsn: r.archivedLsn } : {}),
  ...(r.flushedLsn ? { flushedLsn: r.flushedLsn } : {}),
  ...(r.flushedMovedAt ? { flushedMovedAt: r.flushedMovedAt.toISOString() } : {}),
  ...(r.partialError ? { partialError: r.partialError } : {}),
  ...(r.clockSkewMs !== undefined ? { clockSkewMs: String(Math.round(r.clockSkewMs)) } : {}),
});
