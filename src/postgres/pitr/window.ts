import type { BaseBackup } from './base-backup.ts';
import { baseOnLane, divergedUntil, type Lane, laneOf, newestTimelineOf, onLane } from './lane.ts';
import { segmentName, segmentOf, segmentPosition } from './lsn.ts';
import { reachedFrom, type WindowWal } from './reached.ts';
import type { WalEntry } from './wal-store.ts';

export { segmentName, segmentOf, segmentPosition } from './lsn.ts';
export { followedText, priorText, setAsideNamed, shownRange } from './window-text.ts';
export { consistentBy, type WindowWal } from './reached.ts';

/** When a base backup's window opens, or grows (rpo-monitor.ts: a new segment's first snapshot is taken at once). */
export const WAL_ARRIVES = 'a segment, or a snapshot of the one being written: as a rule seconds, at most 30 s, after the next write';

/**
 * A stretch of time recovery can reach, the base backup it starts from, and the timeline it recovers along
 * (recovery_target_timeline): the base backup's own, or a later one whose history it follows (lane.ts).
 */
export interface WindowRange {
  from: Date;
  to: Date;
  opens: BaseBackup;
  timeline: number;
}

/**
 * From the end of a base backup whose WAL is all archived, to the newest segment archived before any gap; `opens`,
 * the base backup it starts from (the oldest one, or the first taken after the last gap). Across a promotion whose
 * history file is archived, along the new timeline (`timeline`) from a base backup taken before it.
 */
export interface RecoverableWindow extends WindowRange {
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
   * The server moved to a newer timeline (a promotion, or a restored copy made the primary) that no window reaches:
   * no base backup on it, and its history cannot be followed from an older one (its history file not archived, or
   * archived without its record, or the base backup ended past the switch). The window is the older timeline's and
   * ends where it does; reachesNewest is false. `segment`: the first archived on the new timeline, `at`: when stored.
   */
  switched?: { timeline: number; segment: string; at: Date };
  /**
   * The window of an older timeline, for moments the window does not reach back to: a promotion it cannot follow
   * (switched), or one whose history it follows only from a base backup taken since. Recovered along that timeline:
   * the moments before the switch, and those the old primary wrote after it that the promoted server never received.
   */
  priorTimeline?: WindowRange & {
    /** Where the newest timeline forked from it, when the old primary went on past that (lane.ts divergedUntil). */
    forkedAt?: string;
  };
}

/**
 * Segments missing along a lane (by default the newest segment's timeline, following its history: lane.ts) from the
 * oldest base backup on it to the newest segment archived on it.
 */
export function walGaps(bases: BaseBackup[], wal: ReadonlyArray<Pick<WalEntry, 'name' | 'forks'>>, lane: Lane = laneOf(wal, newestTimelineOf(wal))): string[] {
  const segments = wal.filter((e) => !e.name.endsWith('.history') && onLane(e, lane));
  const oldest = bases.find((b) => baseOnLane(b, lane));
  const newest = segments.at(-1);
  if (!oldest || !newest) return [];
  const first = segmentPosition(segmentOf(oldest.startLsn, oldest.timeline)).n;
  const have = new Set(segments.map((e) => segmentPosition(e.name).n));
  const gaps: string[] = [];
  for (let n = first; n <= segmentPosition(newest.name).n; n++) if (!have.has(n)) gaps.push(segmentName(lane.at(n), n));
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
  const newestTimeline = newestTimelineOf(all);
  // Along one lane (lane.ts): the newest timeline with an open window, recovered from a base backup on it or on an
  // older timeline whose switch its archived history file records. Segments sort by name, a newer timeline's after
  // every older one's, and LSNs go on across a switch: read together without the history, a promoted server's WAL
  // made the old timeline's window reach the new one's newest segment, which recovery along the old timeline never
  // replays (QA: "holds the same data" of a copy ten minutes short).
  const timelines = [...new Set([...bases.map((b) => b.timeline), ...all.map((e) => segmentPosition(e.name).timeline)])]
    .filter((t) => t <= newestTimeline)
    .sort((a, b) => b - a);
  const found = timelines.map((t) => windowAlong(bases, wal, t)).filter((w): w is RecoverableWindow => w !== null);
  const [newest] = found;
  if (!newest) return null;
  // An older timeline's window, for the moments the newest lane does not reach back to (a switch it cannot follow).
  const reachedBack = (r: WindowRange) => [newest, newest.earlier].some((x) => x !== undefined && x.from.getTime() <= r.from.getTime());
  const prior = found.find((x) => x.timeline < newest.timeline && !reachedBack(x));
  const lane = laneOf(wal, newest.timeline);
  const fork = lane.forks.find((f) => f.timeline === prior?.timeline);
  const forkedAt = fork && divergedUntil({ ...lane, forks: [fork] }, wal) ? { forkedAt: fork.switchLsn } : {};
  const w = prior ? { ...newest, priorTimeline: { from: prior.from, to: prior.to, opens: prior.opens, timeline: prior.timeline, ...forkedAt } } : newest;
  if (newest.timeline === newestTimeline) return w;
  const first = all.find((e) => segmentPosition(e.name).timeline === newestTimeline) as WindowWal;
  const at = new Date(first.storedAt ?? first.archivedAt);
  return { ...w, reachesNewest: false, switched: { timeline: newestTimeline, segment: first.name, at } };
}

/**
 * The window along one timeline's lane alone (restore-pitr --timeline: an old primary's, for its commits the promoted
 * server never received), without the other timelines' stretches; null when it has none.
 */
export function windowAlong(bases: BaseBackup[], wal: ReadonlyArray<WindowWal>, timeline: number): RecoverableWindow | null {
  const lane = laneOf(wal, timeline);
  const w = windowOn(
    bases.filter((b) => baseOnLane(b, lane)),
    wal.filter((e) => onLane(e, lane)),
    lane,
  );
  // Moments an older timeline of the history also holds, differently (it went on past its switch), are not this
  // lane's to claim (lane.ts divergedUntil): it starts at the next timeline's start, the older one's window before.
  const cut = w && divergedUntil(lane, wal);
  if (!w || !cut || w.from >= cut) return w;
  if (w.to < cut) return null;
  // Any stretch before a gap (`earlier`) ended before the window began, so before the cut too.
  const { earlier: _before, ...rest } = w;
  return { ...rest, from: cut };
}

/** recoverableWindow along one lane: the base backups and WAL files on it. */
function windowOn(bases: BaseBackup[], wal: ReadonlyArray<WindowWal>, lane: Lane): RecoverableWindow | null {
  const segments = wal.filter((e) => !e.name.endsWith('.history'));
  const oldest = bases[0];
  const newest = segments.at(-1);
  if (!oldest || !newest) return null;
  const gaps = walGaps(bases, wal, lane);
  const stretches = gaps.length === 0 ? [stretchTo(oldest, segments)].filter((r) => r !== null) : stretchesAround(bases, segments, gaps);
  const window = stretches.at(-1);
  if (!window) return null;
  const earlier = stretches.at(-2);
  const { from, to, opens } = window;
  const timeline = lane.timeline;
  const reachesNewest = window.lastSegment === newest.name;
  const start = segmentPosition(segmentOf(opens.startLsn, opens.timeline)).n;
  const gap = reachesNewest ? gaps.filter((g) => segmentPosition(g).n < start).at(-1) : gaps.find((g) => segmentPosition(g).n > start);
  return {
    from,
    to,
    opens,
    timeline,
    gaps,
    ...(gap ? { gap } : {}),
    reachesNewest,
    ...(earlier ? { earlier: { from: earlier.from, to: earlier.to, opens: earlier.opens, timeline, ...(earlier.endGap ? { gap: earlier.endGap } : {}) } } : {}),
  };
}

/** `endGap`: the missing segment that ends the stretch (none for the one reaching the newest segment). */
type Stretch = Omit<WindowRange, 'timeline'> & { lastSegment: string; endGap?: string };

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
 * The stretches between gaps (along one lane: the caller's segments and base backups are on it), oldest first: each
 * run of archived segments with a base backup starting in it whose end the run reaches, opened by the oldest such one.
 */
function stretchesAround(bases: BaseBackup[], segments: WindowWal[], gaps: string[]): Stretch[] {
  const gapNs = gaps.map((g) => segmentPosition(g).n);
  const runOf = (n: number) => gapNs.filter((g) => g < n).length;
  const runs = new Map<number, WindowWal[]>();
  for (const e of segments) {
    const run = runs.get(runOf(segmentPosition(e.name).n)) ?? [];
    run.push(e);
    runs.set(runOf(segmentPosition(e.name).n), run);
  }
  const out = new Map<number, Stretch>();
  for (const b of bases) {
    const start = segmentPosition(segmentOf(b.startLsn, b.timeline)).n;
    if (gapNs.includes(start)) continue;
    const run = runOf(start);
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
