/**
 * WAL positions (LSNs such as `0/3000148`) as numbers, and where a segment starts and ends. 16 MB segments, as
 * window.ts assumes too: a server initialised with another `--wal-segsize` is not supported yet.
 */
export const SEGMENT_BYTES = 16 * 1024 * 1024;
const SEGMENTS_PER_XLOGID = 0x1_0000_0000 / SEGMENT_BYTES;

/** A WAL segment's file name, `000000010000000200000003`: timeline, log and segment, eight upper-case hex digits each. */
export const SEGMENT_NAME = /^[0-9A-F]{24}$/;

/** `0/3000148` → 50331976n. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`not a WAL position: ${JSON.stringify(text)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** 50331976n → `0/3000148`, as PostgreSQL writes it. */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** Where the WAL segment `000000010000000200000003` starts (its timeline aside: LSNs continue across timelines). */
export function segmentStartLsn(name: string): bigint {
  const xlogid = BigInt(Number.parseInt(name.slice(8, 16), 16));
  const seg = BigInt(Number.parseInt(name.slice(16, 24), 16));
  return xlogid * BigInt(SEGMENTS_PER_XLOGID) * BigInt(SEGMENT_BYTES) + seg * BigInt(SEGMENT_BYTES);
}

/** Where it ends: the first position of the next segment. */
export const segmentEndLsn = (name: string): bigint => segmentStartLsn(name) + BigInt(SEGMENT_BYTES);

/** 000000010000000200000003 → timeline 1, position 2·256 + 3 (16 MB segments: 256 per log file). */
export function segmentPosition(name: string): { timeline: number; n: number } {
  return { timeline: Number.parseInt(name.slice(0, 8), 16), n: Number.parseInt(name.slice(8, 16), 16) * 0x100 + Number.parseInt(name.slice(16, 24), 16) };
}

/** The segment holding an LSN such as `0/2000028`, on a timeline. */
export function segmentOf(lsn: string, timeline: number): string {
  const [hi, lo] = lsn.split('/').map((h) => Number.parseInt(h, 16)) as [number, number];
  const seg = Math.floor(lo / 0x1000000);
  return segmentName(timeline, hi * 0x100 + seg);
}

const hex8 = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
/** The segment at position `n` (segmentPosition's) on a timeline. */
export const segmentName = (timeline: number, n: number) => `${hex8(timeline)}${hex8(Math.floor(n / 0x100))}${hex8(n % 0x100)}`;

/** The higher of two positions (Math.max takes no bigint). */
export function higher(a: bigint, b: bigint): bigint {
  if (a > b) return a;
  return b;
}
