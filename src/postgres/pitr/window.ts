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
  /** From the end of the oldest base backup whose WAL is all archived, to the newest segment archived. */
  from: Date;
  to: Date;
  /** Segments missing between a base backup's start and the newest archived one: recovery cannot cross them. */
  gaps: string[];
}

/**
 * What point-in-time recovery can reach now: null without a base backup and WAL after it. A gap ends the
 * window before it (recovery replays in order), and is named.
 */
export function recoverableWindow(bases: BaseBackup[], wal: WalEntry[]): RecoverableWindow | null {
  const segments = wal.filter((e) => !e.name.endsWith('.history'));
  const oldest = bases[0];
  const newest = segments.at(-1);
  if (!oldest || !newest) return null;
  const first = segmentPosition(segmentOf(oldest.startLsn, oldest.timeline));
  const have = new Set(segments.map((e) => `${segmentPosition(e.name).timeline}:${segmentPosition(e.name).n}`));
  const last = segmentPosition(newest.name);
  const gaps: string[] = [];
  let to = new Date(newest.archivedAt);
  for (let n = first.n; n <= last.n && first.timeline === last.timeline; n++) {
    if (have.has(`${first.timeline}:${n}`)) continue;
    const name = `${first.timeline.toString(16).toUpperCase().padStart(8, '0')}${Math.floor(n / 0x100)
      .toString(16)
      .toUpperCase()
      .padStart(8, '0')}${(n % 0x100).toString(16).toUpperCase().padStart(8, '0')}`;
    if (gaps.length === 0) {
      // The window ends with the last segment archived before the first gap.
      const before = segments.filter((e) => segmentPosition(e.name).n < n).at(-1);
      if (before) to = new Date(before.archivedAt);
    }
    gaps.push(name);
  }
  if (Date.parse(oldest.finishedAt) > to.getTime()) return null;
  return { from: new Date(oldest.finishedAt), to, gaps };
}
