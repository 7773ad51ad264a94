import { dirname } from 'node:path';
import { segmentEndLsn } from './lsn.ts';
import type { RpoTracker } from './rpo.ts';
import { lastCommitIn } from './test-wal.ts';
import type { WalEntry } from './wal-store.ts';
import { segmentName, segmentPosition } from './window.ts';

/**
 * How a segment's time was found (kept in its index entry as `reachedBy`). `archived`: the time it was archived, in
 * entries written before a live segment was stamped by its samples (they claim up to the second between its switch
 * and its archiving, which a busy server had already written into the next segment: QA); never written now.
 */
export type ReachSource = 'archived' | 'sampled' | 'commit' | 'segment before' | 'unknown';

/**
 * A segment whose newest sample at or before its end is at most this old is live: the server passed its end after
 * that sample (or stands there, idle), and one more sample taken as it is archived tells which.
 */
export const LIVE_MS = 5000;

/**
 * The time up to which a completed WAL segment holds every change the server made: what the recoverable window's
 * end is read from (window.ts), stored as its index entry's `archivedAt` (and the time it was archived beside it,
 * as `storedAt`: what opens a base backup's window). Never later than the time it is archived. Both by the server's
 * clock: the worker's, plus the difference its newest sample measured (RpoTracker.skewMs).
 * - live (`sampled`, as a backlog's: versions before this one refuse an index entry with a value they do not know):
 *   the newest sample of the server's position at or before the segment's end (rpo.ts coveredAt) is at most
 *   `liveMs` old. One more sample is taken then (`sampleNow`, the RPO monitor's): a server standing at the
 *   segment's end (idle after a switch, or pg_backup_stop's) has written nothing beyond it, and the segment holds
 *   everything up to now; a server that went on writing passed the end after the newest sample at or before it,
 *   which is then the time (at most one sampling interval early). Not the time it is archived: a busy server writes
 *   into the next segment in the second between the switch and the archiving, and a window reaching that second
 *   offered moments whose newest commits the archive did not hold (QA measured 0.45 to 1.05 s on a busy server).
 * Else, a backlog (a receiver catching up archives in a minute what the server wrote over an hour; stamping that
 * "now" made the window reach up to an hour past the WAL it held), or samples stopped coming: the latest of these,
 * each a time by which it holds every change:
 * - `sampled`: that newest sample: the server had written nothing beyond the segment then;
 * - `commit`: the segment's newest commit, read with pg_waldump (about 20 ms for a full segment), when the worker
 *   started during the backlog and every sample it has is past the segment;
 * - `segment before`: the time of the segment before it in the archive (WAL is in order).
 * With none of these (a backlog's first segment after a restart, with no commit in it or no pg_waldump, and no
 * segment before it archived: a gap, or a new archive), the time it is archived (`unknown`): the archiver logs it as
 * a warning.
 */
export function segmentReach(o: {
  tracker: Pick<RpoTracker, 'coveredAt' | 'skewMs' | 'newest'>;
  /** pg_waldump of the server's major; null when not installed on this host (or another major's: it reads nothing). */
  pgWaldump: string | null;
  /** An archived entry by name: the local index, and under S3_MODE=primary the bucket's (the local one is gone once uploaded). */
  entry: (name: string) => Promise<Pick<WalEntry, 'archivedAt'> | null>;
  /** Adds a sample of the server's position to `tracker` now (a failure leaves the samples it has). */
  sampleNow?: () => Promise<unknown>;
  liveMs?: number;
}): (name: string, path: string, workerNow: Date) => Promise<{ at: Date; source: ReachSource; storedAt: Date }> {
  const live = o.liveMs ?? LIVE_MS;
  const notAfter = (at: Date, now: Date) => (at.getTime() < now.getTime() ? at : now);
  return async (name, path, workerNow) => {
    // Every time here is the server's clock, as the samples' and commits' are (position-sampler.ts): "now" too.
    const now = new Date(workerNow.getTime() + o.tracker.skewMs());
    const end = segmentEndLsn(name);
    const sampled = o.tracker.coveredAt(end);
    if (sampled && now.getTime() - sampled.getTime() <= live) {
      await o.sampleNow?.().catch(() => undefined);
      // Taken as it is archived, the server had passed the segment's end by then, by its own clock: the time it was
      // stored, exactly (the estimate runs up to half a round trip off, and a snapshot right after it could then
      // cover a time before it, and not open a base backup's window: CI).
      const fresh = o.tracker.newest();
      const stored = fresh?.seenAt && fresh.seenAt.getTime() >= workerNow.getTime() ? fresh.at : now;
      return { at: notAfter(o.tracker.coveredAt(end) ?? sampled, stored), source: 'sampled', storedAt: stored };
    }
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
    if (latest) return { at: notAfter(latest[0], now), source: latest[1], storedAt: now };
    return { at: now, source: 'unknown', storedAt: now };
  };
}
