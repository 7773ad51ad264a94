import { segmentPosition, segmentStartLsn } from './lsn.ts';

/**
 * The RPO, measured: how long ago the oldest committed change that the archive does not hold yet was made. The
 * worker samples the server's current WAL position with the time every few seconds; the archive's position is the
 * end of the newest WAL it holds (a completed segment, or a snapshot of the partial one). Pure: the caller samples.
 */
export interface PositionSample {
  /** By the server's clock (position-sampler.ts): what WAL up to a position holds is read in it (coveredAt). */
  at: Date;
  /** By the worker's clock, when it differs: the RPO is read in it, against the worker's "now" (default `at`). */
  seenAt?: Date;
  /** The server's clock minus the worker's, measured at the query's midpoint (default `at` − `seenAt`). */
  skewMs?: number;
  /** The server's current WAL position (position-sampler.ts: the insert position, as the end of the last record) at that time. */
  lsn: bigint;
}

export interface RpoReading {
  /** 0 when the archive holds everything the server had written at the newest sample. */
  rpoMs: number;
  /**
   * Since when WAL beyond the archive has existed: the newest sample still at or below the archived position (the
   * change came after it), or, when every sample kept is beyond, the oldest of them. Absent when caught up.
   */
  behindSince?: Date;
}

/** At most this many samples: ~2 h 15 min at 2 s, then thinned (every other one between the first and last). */
export const MAX_SAMPLES = 4096;

export class RpoTracker {
  private samples: PositionSample[] = [];

  add(s: PositionSample): void {
    // Positions only move on along one server's history: a sample behind the ones before it is another history (a
    // failover to a standby that was behind, a rebuilt cluster, or a seed from the previous holder's): those ahead go.
    const last = this.samples.at(-1);
    if (last && s.lsn < last.lsn) this.samples = this.samples.filter((x) => x.lsn <= s.lsn);
    this.samples.push(s);
    if (this.samples.length > MAX_SAMPLES) {
      // The oldest sample decides the RPO and the newest the present: both stay, the ones between lose resolution.
      this.samples = this.samples.filter((_, i, all) => i === 0 || i === all.length - 1 || i % 2 === 0);
    }
  }

  /**
   * The newest sample at which the server had written no WAL beyond `lsn`: WAL up to `lsn` then held every change
   * made by that time, and no later time can be claimed for it (a receiver frozen at `lsn` while writes go on).
   * Null when every sample kept is beyond it.
   */
  coveredAt(lsn: bigint): Date | null {
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const s = this.samples[i] as PositionSample;
      if (s.lsn <= lsn) return s.at;
    }
    return null;
  }

  /** The server's clock minus the worker's at the newest sample (0 without one): to read the worker's "now" in the server's. */
  skewMs(): number {
    const s = this.samples.at(-1);
    return s?.skewMs ?? (s?.seenAt ? s.at.getTime() - s.seenAt.getTime() : 0);
  }

  /**
   * Samples an earlier process took (its last measurement, and when it found WAL beyond the archive), put before this
   * one's: a restarted worker's RPO then counts from there, not from its own first sample (QA: 42 s said, about 110 s
   * true, and a worker restarting faster than the objective would never page). Older than every sample, in order.
   */
  seed(earlier: readonly PositionSample[]): void {
    const first = this.samples[0]?.at.getTime() ?? Number.POSITIVE_INFINITY;
    const before = earlier.filter((s) => s.at.getTime() < first).sort((a, b) => a.at.getTime() - b.at.getTime());
    this.samples = [...before, ...this.samples];
  }

  /** The newest sample, if any. */
  newest(): PositionSample | undefined {
    return this.samples.at(-1);
  }

  get size(): number {
    return this.samples.length;
  }

  /**
   * The reading against the archived position. A change beyond it was made after the last sample at or below it,
   * so that sample's time is used (an upper bound, off by at most one sampling interval), not the first sample
   * beyond (a lower bound). Samples older than that one can never matter again (the archive only moves on) and
   * are dropped.
   */
  read(now: Date, archived: bigint): RpoReading {
    const firstBeyond = this.samples.findIndex((s) => s.lsn > archived);
    if (firstBeyond === -1) {
      // Caught up: only the newest sample is kept, as the anchor of the next change.
      this.samples = this.samples.slice(-1);
      return { rpoMs: 0 };
    }
    const anchor = this.samples[firstBeyond - 1] ?? (this.samples[firstBeyond] as PositionSample);
    this.samples = this.samples.slice(Math.max(0, firstBeyond - 1));
    const seen = anchor.seenAt ?? anchor.at;
    return { rpoMs: Math.max(0, now.getTime() - seen.getTime()), behindSince: seen };
  }
}

/**
 * Where the archive ends, as the RPO monitor tracks it: the newest whole segment's end and the newest snapshot's, on
 * one timeline (`on`). Positions go on across a switch, so an old primary's WAL past it (a crash failover) would
 * stand above everything the promoted server writes: no snapshot of it would ever be taken while the RPO read 0
 * (review). A file of a newer timeline starts them again, from the start of its segment: along the new timeline the
 * archive holds what precedes it (the old timeline's WAL to the switch).
 */
export function archivedEnds() {
  const ends = {
    full: 0n,
    partial: 0n,
    on: 0,
    onNewer(name: string) {
      const t = segmentPosition(name).timeline;
      if (t <= ends.on) return;
      ends.on = t;
      ends.full = segmentStartLsn(name.slice(0, 24));
      ends.partial = 0n;
    },
  };
  return ends;
}

/**
 * At most every N seconds, N from the objective: a quarter of it, at least a second, and at most 30 s, so that even
 * the default objective of an hour keeps the RPO of a quiet server under a minute (a snapshot costs one read of at
 * most 16 MB, compressed and encrypted).
 */
export const partialInterval = (objectiveSeconds: number) => Math.max(1000, Math.min((objectiveSeconds * 1000) / 4, 30_000));

/** The measured RPO of one target, and the positions behind it. */
export interface RpoState {
  objectiveSeconds: number;
  /** When the RPO was last measured; absent until the first sample. */
  measuredAt?: Date;
  rpoMs?: number;
  /** Since when committed WAL has been missing from the archive; absent when the archive holds everything. */
  behindSince?: Date;
  /** Why the server could not be asked at the last attempt: the RPO is unknown now (never 0). */
  error?: string;
  /** The server's position, the archive's (durable off the database host), and the worker disk's (durable there only). */
  currentLsn?: string;
  archivedLsn?: string;
  flushedLsn?: string;
  /** When the receiver's flushed position last moved (or was first seen): a frozen receiver's stays still. */
  flushedMovedAt?: Date;
  /** Why the last snapshot of the partial segment failed, if it did. */
  partialError?: string;
  /** The server's clock minus the worker's at the last sample (position-sampler.ts), in ms. */
  clockSkewMs?: number;
}
