import type { BaseBackup } from './base-backup.ts';
import { parseLsn, segmentOf, segmentPosition } from './lsn.ts';
import type { WalEntry } from './wal-store.ts';

/**
 * A WAL file as the window reads it: its name, the time up to which it holds every change (`archivedAt`:
 * segment-time.ts; for a partial snapshot of the segment being written, its coversAt) and how that time was found
 * (`reachedBy`, absent in entries older than it: the time it was archived), and when it was archived (`storedAt`:
 * the server had passed what it holds by then; absent in older entries). `partial`: a snapshot, not the whole segment.
 */
export type WindowWal = Pick<WalEntry, 'name' | 'archivedAt' | 'reachedBy' | 'storedAt' | 'forks'> & {
  partial?: boolean;
  /** A partial snapshot's end: how far into its segment it holds WAL. */
  walEnd?: string;
};

/**
 * Whether a WAL file reaches past a base backup's end, so that recovery from it becomes consistent, and from when.
 * A whole segment at or after the one holding the end LSN does, whatever the clocks say: the archiver can store the
 * segment that pg_backup_stop's switch completes before the bot stamps the base backup finished (seen on a loaded
 * machine: the window stayed empty until the next segment). A partial snapshot of that segment counts when its end
 * is at or past the backup's end LSN (by position, not by time: a snapshot's time is the worker's clock corrected by
 * the measured difference; older entries without `walEnd` are judged by time).
 * The window then starts at the earlier of the backup's finish and the time the file was archived (`storedAt`), both
 * at or after the backup's real end. Not from the time it holds WAL up to (`archivedAt`): that may lie before the
 * switch, or anywhere after the backup began for a backlog's segment. Entries older than `storedAt` carry the time
 * they were archived as `archivedAt` (reachedBy absent or `archived`); others without it wait for the backup's finish.
 */
export function reachedFrom(b: BaseBackup, w: WindowWal): Date | null {
  const finished = Date.parse(b.finishedAt);
  const reaches = Date.parse(w.archivedAt);
  // By position: `w` is on the lane recovery from `b` reads (the caller's filter), whichever timeline's file it is.
  // (An end LSN not known, in records written by hand: judged by time alone.)
  const end = b.endLsn ? segmentPosition(segmentOf(b.endLsn, b.timeline)).n : null;
  const at = segmentPosition(w.name).n;
  // A segment before the end LSN's cannot make the backup consistent, whatever its time says.
  if (end !== null && at < end) return null;
  const endSnapshot = at === end && w.partial;
  if (endSnapshot && w.walEnd !== undefined) {
    if (parseLsn(w.walEnd) < parseLsn(b.endLsn)) return null;
    return new Date(Math.min(finished, w.storedAt !== undefined ? Date.parse(w.storedAt) : reaches));
  }
  if (finished <= reaches) return new Date(finished);
  const stored = w.storedAt !== undefined ? Date.parse(w.storedAt) : w.reachedBy === undefined || w.reachedBy === 'archived' ? reaches : null;
  if (stored === null) return null;
  return end !== null && (at > end || !w.partial) ? new Date(Math.min(stored, finished)) : null;
}

/**
 * Whether recovery from base backup `b` is consistent by `at`: it was stamped finished by then, or a WAL file archived
 * by then reaches past its end (reachedFrom: the archiver can stamp the end segment a moment before the bot stamps
 * the base backup finished). The same rule that starts the window, so restore-pitr never refuses a base backup the
 * window counts from. `wal`: the files on the lane recovery reads (lane.ts onLane).
 */
export function consistentBy(b: BaseBackup, wal: readonly WindowWal[], at: Date): boolean {
  const t = at.getTime();
  if (Date.parse(b.finishedAt) <= t) return true;
  return wal.some((w) => {
    if (w.name.endsWith('.history')) return false;
    const from = reachedFrom(b, w);
    return from !== null && from.getTime() <= t;
  });
}
