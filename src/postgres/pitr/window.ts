import type { BaseBackup } from './base-backup.ts';
import type { WalEntry } from './wal-store.ts';

/** 000000010000000200000003 → timeline 1, position 2·256 + 3 (16 MB segments: 256 per log file). */
export function segmentPosition(name: string): { timeline: number; n: number } {
  return { timeline: Number.parseInt(name.slice(0, 8), 16), n: Number.parseInt(name.slice(8, 16), 16) * 0x100 + Number.parseInt(name.slice(16, 24), 16) };
}

/** The segment holding an LSN such as `0/2000028`, on a timeline. */
export function segmentOf(lsn: string, timeline: number): string {
  const [hi, lo] = lsn.split('/').map((h) => Number.parseInt(h, 16)) as [number, number];
  const seg = Math.floor(lo / 0x1000000);
  const hex = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(hi)}${hex(seg)}`;
}

export interface RecoverableWindow {
  /**
   * The newest stretch that recovery can reach: from the end of the oldest base backup whose WAL runs unbroken into
   * it, to the newest segment archived in that run of WAL.
   */
  from: Date;
  to: Date;
  /** Segments missing between the oldest base backup's start and the newest archived one: recovery cannot cross them. */
  gaps: string[];
  /** Each base backup that can be recovered from, and how far its unbroken WAL reaches. */
  usable: Array<{ id: string; from: Date; to: Date }>;
}

const hex8 = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
const segmentName = (timeline: number, n: number) => `${hex8(timeline)}${hex8(Math.floor(n / 0x100))}${hex8(n % 0x100)}`;

/**
 * What point-in-time recovery can reach now: null without a base backup whose WAL is archived from its start to its
 * end. A base backup is recovered from its start segment onwards, in order, so its reach ends at the first missing
 * segment after it; a base backup whose own start or end segment is missing (the stream began after it) is no use.
 * Several base backups with gaps between them make separate stretches: the newest is the window, and every missing
 * segment is named.
 */
export function recoverableWindow(bases: BaseBackup[], wal: WalEntry[]): RecoverableWindow | null {
  const segments = wal.filter((e) => !e.name.endsWith('.history'));
  const newest = segments.at(-1);
  if (bases.length === 0 || !newest) return null;
  const byPos = new Map(segments.map((e) => [`${segmentPosition(e.name).timeline}:${segmentPosition(e.name).n}`, e]));
  const usable: RecoverableWindow['usable'] = [];
  for (const b of [...bases].sort((x, y) => Date.parse(x.finishedAt) - Date.parse(y.finishedAt))) {
    const first = segmentPosition(segmentOf(b.startLsn, b.timeline)).n;
    const end = segmentPosition(segmentOf(b.endLsn ?? b.startLsn, b.timeline)).n;
    let last: WalEntry | undefined;
    let n = first;
    for (; byPos.has(`${b.timeline}:${n}`); n++) last = byPos.get(`${b.timeline}:${n}`);
    if (!last || n <= end) continue;
    const to = new Date(Math.max(Date.parse(last.archivedAt), Date.parse(b.finishedAt)));
    usable.push({ id: b.id, from: new Date(b.finishedAt), to });
  }
  const gaps: string[] = [];
  const oldest = bases.reduce((a, b) => (segmentPosition(segmentOf(b.startLsn, b.timeline)).n < segmentPosition(segmentOf(a.startLsn, a.timeline)).n ? b : a));
  const from = segmentPosition(segmentOf(oldest.startLsn, oldest.timeline));
  const last = segmentPosition(newest.name);
  for (let n = from.n; n <= last.n && from.timeline === last.timeline; n++) {
    if (!byPos.has(`${from.timeline}:${n}`)) gaps.push(segmentName(from.timeline, n));
  }
  if (usable.length === 0) return null;
  // The stretch that ends last, grown backwards over every usable base backup whose reach overlaps it.
  const sorted = [...usable].sort((a, b) => b.to.getTime() - a.to.getTime());
  const head = sorted[0] as (typeof usable)[number];
  let start = head.from;
  for (const u of [...usable].sort((a, b) => b.from.getTime() - a.from.getTime())) {
    if (u.to.getTime() >= start.getTime() && u.from.getTime() < start.getTime()) start = u.from;
  }
  return { from: start, to: head.to, gaps, usable };
}
