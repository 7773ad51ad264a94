import type { BaseBackup } from './base-backup.ts';
import { parseLsn, segmentName, segmentOf, segmentPosition } from './lsn.ts';
import type { WalEntry } from './wal-store.ts';

export { segmentName, segmentOf, segmentPosition } from './lsn.ts';
export { setAsideNamed, shownRange } from './window-text.ts';

/**
 * A WAL file as the window reads it: its name, the time up to which it holds every change (`archivedAt`:
 * segment-time.ts; for a partial snapshot of the segment being written, its coversAt) and how that time was found
 * (`reachedBy`, absent in entries older than it: the time it was archived), and when it was archived (`storedAt`:
 * the server had passed what it holds by then; absent in older entries). `partial`: a snapshot, not the whole segment.
 */
export type WindowWal = Pick<WalEntry, 'name' | 'archivedAt' | 'reachedBy' | 'storedAt'> & {
  partial?: boolean;
  /** A partial snapshot's end: how far into its segment it holds WAL. */
  walEnd?: string;
};

/** When a base backup's window opens, or grows (rpo-monitor.ts: a new segment's first snapshot is taken at once). */
export const WAL_ARRIVES = 'a segment, or a snapshot of the one being written: as a rule seconds, at most 30 s, after the next write';

/** A stretch of time recovery can reach, and the base backup it starts from. */
export interface WindowRange {
  from: Date;
  to: Date;
  opens: BaseBackup;
}

export interface RecoverableWindow {
  /** From the end of a base backup whose WAL is all archived, to the newest segment archived before any gap. */
  from: Date;
  to: Date;
  /** The base backup the window starts from (the oldest one, or the first taken after the last gap). */
  opens: BaseBackup;
  /** Segments missing between the oldest base backup's start and the newest archived one: recovery cannot cross them. */
  gaps: string[];
  /** The gap that ends the window (reachesNewest false), or the newest one it starts after; absent without gaps. */
  gap?: string;
  /**
   * Whether the window reaches the newest archived segment: no gap, or a base backup started after the last gap.
   * False: recovery ends at the first gap, and every moment after it is out of reach until a new base backup.
   */
  reachesNewest: boolean;
  /** The stretch before the window that an older base backup still reaches, and the gap that ends it. */
  earlier?: WindowRange & { gap?: string };
  /**
   * The server moved to a newer timeline (a promotion, or a restored copy made the primary) on which no base backup
   * was taken yet: the window is the older timeline's and ends where it does (recovery follows the base backup's
   * timeline), and reachesNewest is false. `segment`: the first archived on the new timeline, `at`: when it was stored.
   */
  switched?: { timeline: number; segment: string; at: Date };
  /**
   * The window of the timeline before the window's own (a promotion since: its base backups and WAL are kept for the
   * retention period), recovered along that timeline: the moments before the switch, and those the old primary wrote
   * after it that the promoted server never received.
   */
  priorTimeline?: WindowRange & { timeline: number };
}

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
function reachedFrom(b: BaseBackup, w: WindowWal): Date | null {
  const finished = Date.parse(b.finishedAt);
  const reaches = Date.parse(w.archivedAt);
  const end = b.endLsn ? segmentPosition(segmentOf(b.endLsn, b.timeline)) : null;
  const at = segmentPosition(w.name);
  const sameTimeline = end !== null && at.timeline === end.timeline;
  // A segment before the end LSN's cannot make the backup consistent, whatever its time says.
  if (sameTimeline && at.n < end.n) return null;
  const endSnapshot = sameTimeline && at.n === end.n && w.partial;
  if (endSnapshot && w.walEnd !== undefined) {
    if (parseLsn(w.walEnd) < parseLsn(b.endLsn as string)) return null;
    return new Date(Math.min(finished, w.storedAt !== undefined ? Date.parse(w.storedAt) : reaches));
  }
  if (finished <= reaches) return new Date(finished);
  const stored = w.storedAt !== undefined ? Date.parse(w.storedAt) : w.reachedBy === undefined || w.reachedBy === 'archived' ? reaches : null;
  if (stored === null) return null;
  return sameTimeline && (at.n > end.n || !w.partial) ? new Date(Math.min(stored, finished)) : null;
}

/**
 * Whether recovery from base backup `b` is consistent by `at`: it was stamped finished by then, or a WAL file archived
 * by then reaches past its end (reachedFrom: the archiver can stamp the end segment a moment before the bot stamps
 * the base backup finished). The same rule that starts the window, so restore-pitr never refuses a base backup the
 * window counts from.
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

/** Segments missing (on the newest segment's timeline) from the oldest base backup's start to the newest archived. */
export function walGaps(bases: BaseBackup[], wal: ReadonlyArray<Pick<WalEntry, 'name'>>): string[] {
  const segments = wal.filter((e) => !e.name.endsWith('.history'));
  const oldest = bases[0];
  const newest = segments.at(-1);
  if (!oldest || !newest) return [];
  const first = segmentPosition(segmentOf(oldest.startLsn, oldest.timeline));
  const last = segmentPosition(newest.name);
  // A timeline switch since the base backup is not followed here: no gap is claimed across it.
  if (first.timeline !== last.timeline) return [];
  const have = new Set(segments.map((e) => segmentPosition(e.name)).flatMap((p) => (p.timeline === last.timeline ? [p.n] : [])));
  const gaps: string[] = [];
  for (let n = first.n; n <= last.n; n++) if (!have.has(n)) gaps.push(segmentName(last.timeline, n));
  return gaps;
}

/**
 * What point-in-time recovery can reach now: null without a base backup and WAL after it. Recovery replays WAL in
 * order from a base backup's start, so a gap ends a stretch; a base backup started after a gap opens a stretch again,
 * from its end to the last segment before the next gap (or the newest archived). The window is the newest stretch;
 * `earlier`, the one before it. Gaps are named either way. Of the WAL files it reads every name, the time of each
 * stretch's last one (its end), and the times of the first ones at or after its base backup's end LSN (its start).
 */
export function recoverableWindow(bases: BaseBackup[], wal: ReadonlyArray<WindowWal>): RecoverableWindow | null {
  const all = wal.filter((e) => !e.name.endsWith('.history'));
  const newestTimeline = all.length ? segmentPosition(all.at(-1)?.name as string).timeline : 0;
  // One timeline: the newest a base backup was taken on whose window is open. Segments sort by name, a newer
  // timeline's after every older one's, and LSNs go on across a switch: read together, a promoted server's WAL made the
  // old timeline's window reach the new one's newest segment, which recovery from that base backup never replays
  // (QA: "holds the same data" of a copy ten minutes short).
  const timelines = [...new Set(bases.map((b) => b.timeline).filter((t) => t <= newestTimeline))].sort((a, b) => b - a);
  const on = (t: number) =>
    windowOn(
      bases.filter((b) => b.timeline === t),
      wal.filter((e) => e.name.endsWith('.history') || segmentPosition(e.name).timeline === t),
    );
  const found = timelines.map((t) => ({ t, w: on(t) })).filter((x): x is { t: number; w: RecoverableWindow } => x.w !== null);
  const [newest, prior] = found;
  if (!newest) return null;
  const w = prior ? { ...newest.w, priorTimeline: { from: prior.w.from, to: prior.w.to, opens: prior.w.opens, timeline: prior.t } } : newest.w;
  if (newest.t === newestTimeline) return w;
  const first = all.find((e) => segmentPosition(e.name).timeline === newestTimeline) as WindowWal;
  const at = new Date(first.storedAt ?? first.archivedAt);
  return { ...w, reachesNewest: false, switched: { timeline: newestTimeline, segment: first.name, at } };
}

/** recoverableWindow on one timeline: its base backups and WAL files. */
function windowOn(bases: BaseBackup[], wal: ReadonlyArray<WindowWal>): RecoverableWindow | null {
  const segments = wal.filter((e) => !e.name.endsWith('.history'));
  const oldest = bases[0];
  const newest = segments.at(-1);
  if (!oldest || !newest) return null;
  const gaps = walGaps(bases, wal);
  const stretches = gaps.length === 0 ? [stretchTo(oldest, segments)].filter((r) => r !== null) : stretchesAround(bases, segments, gaps);
  const window = stretches.at(-1);
  if (!window) return null;
  const earlier = stretches.at(-2);
  const { from, to, opens } = window;
  const reachesNewest = window.lastSegment === newest.name;
  const start = segmentPosition(segmentOf(opens.startLsn, opens.timeline)).n;
  const gap = reachesNewest ? gaps.filter((g) => segmentPosition(g).n < start).at(-1) : gaps.find((g) => segmentPosition(g).n > start);
  return {
    from,
    to,
    opens,
    gaps,
    ...(gap ? { gap } : {}),
    reachesNewest,
    ...(earlier ? { earlier: { from: earlier.from, to: earlier.to, opens: earlier.opens, ...(earlier.endGap ? { gap: earlier.endGap } : {}) } } : {}),
  };
}

/** `endGap`: the missing segment that ends the stretch (none for the one reaching the newest segment). */
type Stretch = WindowRange & { lastSegment: string; endGap?: string };

/**
 * From base backup `b`'s end to the last of `run` (a run of segments, in order, with no gap in it): from the earliest
 * moment one of them makes recovery consistent (reachedFrom; the end LSN's segment, as a rule) to the time the last
 * one holds WAL up to. None while that time is before the moment: the backup ended after the last segment's newest
 * sample before its switch, and later WAL opens the stretch.
 */
function stretchTo(b: BaseBackup, run: readonly WindowWal[]): Stretch | null {
  const last = run.at(-1);
  if (!last) return null;
  let from: Date | null = null;
  for (const w of run) {
    const f = reachedFrom(b, w);
    if (f && (!from || f < from)) from = f;
    // Segments are archived in order: a later one was stored no earlier, and opens it no earlier.
    if (f && !w.partial) break;
  }
  const to = new Date(last.archivedAt);
  return from && from.getTime() <= to.getTime() ? { from, to, opens: b, lastSegment: last.name } : null;
}

/**
 * The stretches between gaps (all on one timeline: walGaps claims none across a switch), oldest first: each run of
 * archived segments with a base backup starting in it whose end the run reaches, opened by the oldest such one.
 */
function stretchesAround(bases: BaseBackup[], segments: WindowWal[], gaps: string[]): Stretch[] {
  const timeline = segmentPosition(gaps[0] as string).timeline;
  const gapNs = gaps.map((g) => segmentPosition(g).n);
  const runOf = (n: number) => gapNs.filter((g) => g < n).length;
  const runs = new Map<number, WindowWal[]>();
  for (const e of segments) {
    const p = segmentPosition(e.name);
    if (p.timeline !== timeline) continue;
    const run = runs.get(runOf(p.n)) ?? [];
    run.push(e);
    runs.set(runOf(p.n), run);
  }
  const out = new Map<number, Stretch>();
  for (const b of bases) {
    const start = segmentPosition(segmentOf(b.startLsn, b.timeline));
    if (start.timeline !== timeline || gapNs.includes(start.n)) continue;
    const run = runOf(start.n);
    const segs = runs.get(run);
    if (out.has(run) || !segs) continue;
    const s = stretchTo(b, segs);
    // Run k lies between the k-th gap and the next one, which ends it.
    if (s) out.set(run, gaps[run] ? { ...s, endGap: gaps[run] } : s);
  }
  return [...out.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s);
}

/**
 * The stretch of the window a moment lies in (the window itself, the stretch before a gap, or the timeline before a
 * promotion), or undefined. In order: a moment the new timeline also reaches is recovered along it.
 */
export function rangeAt(w: RecoverableWindow, at: Date): WindowRange | undefined {
  const t = at.getTime();
  return [w, w.earlier, w.priorTimeline].find((r) => r !== undefined && t >= r.from.getTime() && t <= r.to.getTime());
}
