import type { BaseBackup } from './base-backup.ts';
import { parseLsn, segmentOf, segmentPosition } from './lsn.ts';

/** One line of a timeline history file: the timeline the server left, and the LSN where it left it. */
export interface Fork {
  timeline: number;
  switchLsn: string;
}

/**
 * A history file's text (`00000002.history`: "1\t0/3000000\tno recovery target specified"), the timelines before
 * the file's own, oldest first. Comments and blank lines are skipped; a file with no such line gives none.
 */
export function parseHistory(text: string): Fork[] {
  const forks: Fork[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})\b/.exec(line);
    if (m) forks.push({ timeline: Number(m[1]), switchLsn: (m[2] as string).toUpperCase() });
  }
  return forks;
}

/**
 * The WAL that recovery to `timeline` replays (recovery_target_timeline), as PostgreSQL reads it: for each segment,
 * the file of the newest timeline in the target's history that had begun by that segment (XLogFileReadAnyTLI). The
 * segment holding a switch is read from the new timeline: pg_receivewal streams it from the segment's start, so that
 * copy holds the old timeline's WAL up to the switch. Without the history file's record (`forks`, recorded when it is
 * archived; older entries lack it) the lane is the timeline alone: a switch is then not followed.
 */
export interface Lane {
  timeline: number;
  forks: Fork[];
  /** The timeline whose file of segment `n` (lsn.ts segmentPosition) recovery reads. */
  at(n: number): number;
}

const hex8 = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');

export function laneOf(wal: ReadonlyArray<{ name: string; forks?: Fork[] | undefined }>, timeline: number): Lane {
  const forks = wal.find((e) => e.name === `${hex8(timeline)}.history`)?.forks ?? [];
  // Where each older timeline stops being read: the segment holding its switch belongs to the next one.
  const ends = forks.map((f) => ({ timeline: f.timeline, n: segmentPosition(segmentOf(f.switchLsn, f.timeline)).n }));
  return { timeline, forks, at: (n) => ends.find((e) => n < e.n)?.timeline ?? timeline };
}

/** The newest timeline a segment was archived on (0 without any). */
export const newestTimelineOf = (wal: ReadonlyArray<{ name: string }>) =>
  wal.reduce((t, e) => (e.name.endsWith('.history') ? t : Math.max(t, segmentPosition(e.name).timeline)), 0);

/** A promotion to `timeline` as its archived history file records it: the timeline left, where, and when the file was archived. */
export interface Promotion {
  timeline: number;
  from: number;
  switchLsn: string;
  at: Date;
}

export function promotionTo(
  wal: ReadonlyArray<{ name: string; forks?: Fork[] | undefined; archivedAt: string; storedAt?: string | undefined }>,
  timeline: number,
): Promotion | null {
  const h = wal.find((e) => e.name === `${hex8(timeline)}.history`);
  const f = h?.forks?.at(-1);
  return h && f ? { timeline, from: f.timeline, switchLsn: f.switchLsn, at: new Date(h.storedAt ?? h.archivedAt) } : null;
}

/** Whether a WAL file is one recovery along the lane reads (history files always: recovery asks for them). */
export function onLane(e: { name: string }, lane: Lane): boolean {
  if (e.name.endsWith('.history')) return true;
  const p = segmentPosition(e.name);
  return p.timeline === lane.at(p.n);
}

/**
 * Whether recovery along the lane can start from a base backup: one on the lane's own timeline, or on an older one
 * in its history that ended (its end LSN, where recovery from it becomes consistent) at or before that timeline's
 * switch. A base backup the old primary took after the promotion lies on a branch the lane does not follow.
 */
export function baseOnLane(b: Pick<BaseBackup, 'timeline' | 'endLsn'>, lane: Lane): boolean {
  if (b.timeline === lane.timeline) return true;
  return lane.forks.some((f) => f.timeline === b.timeline && b.endLsn !== undefined && parseLsn(b.endLsn) <= parseLsn(f.switchLsn));
}

/**
 * Since when the lane can be trusted for every moment, when an older timeline of its history holds WAL past its switch
 * in the archive (the old primary went on writing: a crash failover to a standby that was behind, or a restored copy
 * made the primary days later). A moment between such a switch and the end of that WAL is then two moments: along the
 * lane it is the state at the switch, along the old timeline the state that primary really had. The lane counts
 * from the end of the old timeline's WAL (the time its newest file holds WAL up to): before it, the older timeline's
 * own window answers (window.ts priorTimeline); after it the old primary wrote nothing the archive holds, and the
 * promoted server's first commits are the lane's (QA: counted from the history file's arrival, seconds later, they
 * could only be reached as `latest`). Null when nothing diverges (a planned promotion).
 */
export function divergedUntil(lane: Lane, wal: ReadonlyArray<{ name: string; archivedAt: string; partial?: boolean; walEnd?: string }>): Date | null {
  let cut: Date | null = null;
  for (const f of lane.forks) {
    const switchN = segmentPosition(segmentOf(f.switchLsn, f.timeline)).n;
    const past = wal.filter((e) => {
      if (e.name.endsWith('.history')) return false;
      const p = segmentPosition(e.name);
      if (p.timeline !== f.timeline || p.n < switchN) return false;
      // The switch's own segment: whole, the old primary wrote it to its end; a snapshot, as far as its end says.
      return !(p.n === switchN && e.partial && (e.walEnd === undefined || parseLsn(e.walEnd) <= parseLsn(f.switchLsn)));
    });
    // Its newest file's time, the one the window reads (the bucket's listing reads only that entry; the others carry
    // the time the bucket received them, later than the WAL in them).
    const newest = past.reduce<(typeof past)[number] | undefined>((a, e) => (a && a.name >= e.name ? a : e), undefined);
    if (newest && (!cut || new Date(newest.archivedAt) > cut)) cut = new Date(newest.archivedAt);
  }
  return cut;
}
