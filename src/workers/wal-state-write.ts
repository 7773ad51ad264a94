import { parseLsn } from '../postgres/pitr/lsn.ts';
import type { PositionSample } from '../postgres/pitr/rpo.ts';
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

/**
 * The samples a previous holder's state stands for (rpo-monitor.ts `previous`): its last measurement (the server's
 * position then) and, when it was behind, the moment WAL beyond the archive began (just past the archived position
 * then). In the worker's clock, as it wrote them; the server's, with the skew it measured. None from a state with
 * no measurement, or one older than `maxAgeMs` (a stream stopped for days starts afresh: its RPO is the gap's).
 */
export function previousSamples(s: StoredWalState | null, now: Date, maxAgeMs: number): PositionSample[] {
  if (!s?.rpoMeasuredAt || !s.currentLsn) return [];
  const measured = new Date(s.rpoMeasuredAt);
  if (Number.isNaN(measured.getTime()) || now.getTime() - measured.getTime() > maxAgeMs) return [];
  const skew = Number(s.clockSkewMs ?? 0) || 0;
  const sample = (seenAt: Date, lsn: bigint): PositionSample => ({ at: new Date(seenAt.getTime() + skew), seenAt, skewMs: skew, lsn });
  const out = [sample(measured, parseLsn(s.currentLsn))];
  const behind = s.rpoBehindSince ? new Date(s.rpoBehindSince) : null;
  if (behind && !Number.isNaN(behind.getTime()) && s.archivedLsn) out.unshift(sample(behind, parseLsn(s.archivedLsn) + 1n));
  return out;
}

/** The previous holder's RPO measurement, as stored: what stands until this holder measures its own. */
export function inheritedRpo(s: StoredWalState | null): Partial<StoredWalState> {
  if (!s?.rpoMeasuredAt) return {};
  const { rpoMeasuredAt, rpoBehindSince, currentLsn, archivedLsn, clockSkewMs } = s;
  return Object.fromEntries(Object.entries({ rpoMeasuredAt, rpoBehindSince, currentLsn, archivedLsn, clockSkewMs }).filter(([, v]) => v !== undefined));
}
