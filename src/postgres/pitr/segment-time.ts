import { dirname } from 'node:path';
import { segmentEndLsn } from './lsn.ts';
import type { RpoTracker } from './rpo.ts';
import { lastCommitIn } from './test-wal.ts';
import type { WalEntry } from './wal-store.ts';
import { segmentName, segmentPosition } from './window.ts';

/** How a segment's time was found (kept in its index entry as `reachedBy`). */
export type ReachSource = 'archived' | 'sampled' | 'commit' | 'segment before' | 'unknown';

/**
 * A segment whose newest sample at or before its end is at most this old is live: it filled after that sample (or
 * the server stands at its end, idle), so the time it is archived claims at most this much the segment may not hold.
 */
export const LIVE_MS = 5000;

/**
 * The time up to which a completed WAL segment holds every change the server made: what the recoverable window's
 * end is read from (window.ts), stored as its index entry's `archivedAt`. Live, that is the time it is archived (a
 * second after it filled; exact for an idle server standing at its end). Not for a backlog: a receiver catching up
 * (down for an hour while the slot kept the WAL) archives in a minute segments the server wrote over that hour, and
 * stamping them "now" made the window reach up to an hour past the WAL it held (a restore aimed inside that hour
 * replays to the archive's end and fails with "recovery ended before configured recovery target was reached").
 * - `archived`: the newest sample of the server's position at or before the segment's end (rpo.ts coveredAt) is at
 *   most `liveMs` old: the segment is live, and the time it is archived counts.
 * Else, a backlog (or samples stopped coming): the latest of these, each a time by which it holds every change:
 * - `sampled`: that newest sample: the server had written nothing beyond the segment then;
 * - `commit`: the segment's newest commit, read with pg_waldump (about 20 ms for a full segment), when the worker
 *   started during the backlog and every sample it has is past the segment;
 * - `segment before`: the time of the segment before it in the archive (WAL is in order).
 * With none of these (a backlog's first segment after a restart, with no commit in it or no pg_waldump, and no
 * segment before it archived: a gap, or a new archive), the time it is archived (`unknown`): the archiver logs it as
 * a warning. Never later than the time it is archived.
 */
export function segmentReach(o: {
  tracker: Pick<RpoTracker, 'coveredAt'>;
  /** pg_waldump of the server's major; null when not installed on this host (or another major's: it reads nothing). */
  pgWaldump: string | null;
  /** An archived entry by name: the local index, and under S3_MODE=primary the bucket's (the local one is gone once uploaded). */
  entry: (name: string) => Promise<Pick<WalEntry, 'archivedAt'> | null>;
  liveMs?: number;
}): (name: string, path: string, now: Date) => Promise<{ at: Date; source: ReachSource }> {
  const live = o.liveMs ?? LIVE_MS;
  return async (name, path, now) => {
    const sampled = o.tracker.coveredAt(segmentEndLsn(name));
    if (sampled && now.getTime() - sampled.getTime() <= live) return { at: now, source: 'archived' };
    // pg_waldump only when no sample is at or before it (the worker started during the backlog): otherwise the
    // sample is within one sampling interval of the moment the server passed the segment's end.
    const commit = o.pgWaldump && !sampled ? await lastCommitIn(o.pgWaldump, dirname(path), name, true) : null;
    const { timeline, n } = segmentPosition(name);
    const before = n > 0 ? await o.entry(segmentName(timeline, n - 1)).catch(() => null) : null;
    const known: Array<[Date, ReachSource]> = [];
    if (sampled) known.push([sampled, 'sampled']);
    if (commit) known.push([commit.at, 'commit']);
    if (before) known.push([new Date(before.archivedAt), 'segment before']);
    const latest = known.sort((a, b) => b[0].getTime() - a[0].getTime())[0];
    if (latest) return { at: latest[0].getTime() < now.getTime() ? latest[0] : now, source: latest[1] };
    return { at: now, source: 'unknown' };
  };
}
