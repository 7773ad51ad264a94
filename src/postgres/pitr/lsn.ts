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
