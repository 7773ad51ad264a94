import type { RedisConnection } from '../redis-client.ts';
import { walLeaseKey } from './wal-lease.ts';

/** Where a worker writes the state of one target's WAL stream (workers/wal-archives.ts), for `/backup status`. */
export const walStateKey = (prefix: string, target: string) => `${prefix}:wal:${target}`;

/** What `/backup status` shows of one target's WAL stream, as the worker last wrote it. */
export interface StoredWalState {
  receiver: 'up' | 'down' | 'not started';
  /** The worker holding the target's WAL lease ("host pid 1234"), which wrote this state. */
  holder?: string;
  since: string;
  error?: string;
  lastArchived?: string;
  lastArchivedAt?: string;
  /** The measured RPO (postgres/pitr/rpo-monitor.ts): the objective in seconds, and when it was last measured. */
  rpoObjectiveSeconds?: string;
  rpoMeasuredAt?: string;
  /** Since when committed WAL has been missing from the archive; absent at the last measurement: the archive held everything. */
  rpoBehindSince?: string;
  /** Why the server could not be asked: the RPO is unknown. */
  rpoError?: string;
  /** The server's WAL position, the archive's, and the worker disk's (flushed by the receiver, not yet archived). */
  currentLsn?: string;
  archivedLsn?: string;
  flushedLsn?: string;
  /** When the receiver's flushed position was last seen to move (rpo-monitor.ts): health's stalled receiver. */
  flushedMovedAt?: string;
  /** Why the last snapshot of the partial segment failed. */
  partialError?: string;
  /** The server's clock minus the worker's, in whole ms, at the last measurement (position-sampler.ts). */
  clockSkewMs?: string;
  /**
   * The off-site copy of the archive (S3_MODE=copy; postgres/pitr/offsite-mirror.ts): where, the newest segment
   * there, how many archived segments are not there yet, when it was last checked, and since when copies fail.
   */
  offsiteWhere?: string;
  offsiteNewest?: string;
  offsitePending?: string;
  offsiteCheckedAt?: string;
  offsiteError?: string;
  offsiteFailingSince?: string;
  /**
   * `primary` (S3_MODE=primary): the bucket is the archive itself and the worker's disk a spool, so `lastArchived`
   * is the newest segment in the bucket and `offsitePending` the spooled ones not archived yet. Absent: a copy.
   */
  offsiteRole?: string;
}

/**
 * The state as the lease holder last wrote it — except that a holder that died cannot take its "up" back: when the
 * state names a holder and nobody holds the lease any more, the stream is down, since the holder's last sign of life
 * (its newest measurement, archived segment or off-site check: when it died is not known more closely; QA: "down
 * since" the time it came up, so the 5-minute grace never applied). Health and `/backup status` both read it here.
 */
export async function readWalState(redis: RedisConnection, prefix: string, target: string): Promise<StoredWalState | null> {
  const [h, lease] = await Promise.all([redis.hgetall(walStateKey(prefix, target)), redis.get(walLeaseKey(prefix, target))]);
  if (!h.receiver) return null;
  const s = h as unknown as StoredWalState;
  if (s.holder && s.receiver === 'up' && lease === null) {
    const seen = [s.since, s.rpoMeasuredAt, s.lastArchivedAt, s.offsiteCheckedAt].map((t) => (t ? Date.parse(t) : Number.NaN)).filter((t) => !Number.isNaN(t));
    return {
      ...s,
      receiver: 'down',
      since: new Date(Math.max(...seen)).toISOString(),
      error: `no worker holds the WAL lease: its last holder (${s.holder}) died or lost Redis; start a worker, or check the workers' logs`,
    };
  }
  return s;
}
