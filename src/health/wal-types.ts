/**
 * What the health check knows of a point-in-time-recovery target's archive and slot (health/wal-facts.ts reads it;
 * health/wal-conditions.ts judges it). A leaf: plain data, so the pure conditions and the types import nothing.
 */
export interface WalArchiveFacts {
  /** Why the archive could not be judged (not kept locally, an unreadable index); nothing below is meaningful then. */
  unreadable?: string;
  /** The archive is not kept where this version can read it (S3 as the primary store): not a failure of its own. */
  notKept?: string;
  baseBackups: number;
  newestSegment: string | null;
  /** Segments missing between the oldest base backup's start and the newest archived segment. */
  gaps: string[];
  /** The gap that ends the window (reachesNewest false), or the newest one it starts after (window.ts). */
  gap?: string | undefined;
  /** No gap, or a base backup started after the last one: recovery reaches the newest archived segment. */
  reachesNewest: boolean;
  window: { from: Date; to: Date } | null;
  /** The window crosses a promotion: recovered along timeline `to` from a base backup taken on `from` (lane.ts). */
  followed?: { from: number; to: number };
  /** The server moved to a timeline no base backup was taken on (window.ts `switched`): the window ends where the old one did. */
  switched?: { timeline: number; segment: string; at: Date };
  /** The window's timeline reached by a promotion whose history file is archived with its record (lane.ts promotionTo). */
  promotion?: { timeline: number; from: number; switchLsn: string; at: Date };
  /** After a promotion, the older timeline's window: still recoverable along it (window.ts priorTimeline). */
  priorTimeline?: { from: Date; to: Date; timeline: number; forkedAt?: string | undefined };
  /** Before a gap, what an older base backup still reaches (when the window itself starts after the gap). */
  earlier: { from: Date; to: Date; gap?: string | undefined } | null;
  /** WAL files indexed as archived whose file is gone (wal-index.ts lostWal): damage, said by `damaged`. Local only. */
  lost?: string[];
  /** What the checksum scrub found damaged and moved aside (pitr-scrub.ts): WAL segments and base backup ids. Local only. */
  setAside?: { wal: string[]; bases: string[] };
}

export interface WalSlotFacts {
  name: string;
  /** The target's `pitr.slotMaxBytes`: retained WAL above it fails `wal-slot`. */
  limitBytes: number;
  /** host:port of the server asked (the target's own connection), for the sentences. */
  server?: string;
  /** Why the server could not be asked; the figures below are not set then. */
  error?: string;
  exists?: boolean;
  active?: boolean;
  walStatus?: string | null;
  retainedBytes?: number | null;
  safeWalSize?: number | null;
  /** max_slot_wal_keep_size in MB (-1 unlimited), null where the server has no such setting. */
  keepSizeMb?: number | null;
}

export interface WalHealthFacts {
  archive: WalArchiveFacts;
  slot: WalSlotFacts;
}

/**
 * Default `pitr.slotMaxBytes`, 8 GiB: a synchronous receiver keeps its slot within a segment or two of the server,
 * so anything near this means the receiver is gone or far behind; yet it is more than a bulk load writes during a
 * receiver's restart backoff (a minute at most), so it does not cry wolf. Lower it on a small WAL disk.
 */
export const DEFAULT_SLOT_MAX_BYTES = 8 * 1024 ** 3;
