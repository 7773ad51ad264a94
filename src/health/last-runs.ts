import { readWalState, type StoredWalState } from '../jobs/wal-state.ts';
import { baseBackupsWatchedSince, lastBaseBackupRun, lastPitrTestRun } from '../jobs/base-backup-runs.ts';
import type { RedisConnection } from '../redis-client.ts';
import { z } from 'zod';
import { readDriftAck } from './drift-ack.ts';
import type { BackupRunSummary, DriftAck } from './types.ts';

const Stored = z.object({ ok: z.boolean(), at: z.string(), reason: z.string().nullable(), jobId: z.string().nullable() });

/**
 * The outcome of the last backup run per target, kept in Redis by the backup worker: storage only knows the
 * backups that succeeded, and "the last run failed" is what a health check must not miss.
 */
export interface RunLog {
  record(target: string, run: BackupRunSummary): Promise<void>;
  last(target: string): Promise<BackupRunSummary | null>;
  /** Failed runs since this Redis began counting: shared by every process, so any /metrics reports them all. */
  failures(target: string): Promise<number>;
  /**
   * When the bot first looked at this target (set by the first call, `now` then): a target never backed up is given
   * until its first scheduled backup after this moment, which a restart must not push back.
   */
  firstSeen(target: string, now: Date): Promise<Date>;
  /** The WAL stream of a target with point-in-time recovery, as its worker last wrote it (jobs/wal-state.ts). */
  walState(target: string): Promise<StoredWalState | null>;
  /** The last base-backup run of a target with point-in-time recovery (jobs/base-backup-runs.ts). */
  baseBackupRun(target: string): Promise<BackupRunSummary | null>;
  /** When the bot first watched that target's base backups (set by the first call). */
  baseBackupsWatchedSince(target: string, now: Date): Promise<Date>;
  /** The last PITR restore test of a target with point-in-time recovery (workers/pitr-test-worker.ts). */
  pitrTestRun(target: string): Promise<BackupRunSummary | null>;
  /** The data drift an operator acknowledged last (health/drift-ack.ts), or null. */
  driftAck(target: string): Promise<DriftAck | null>;
}

export function createRunLog(redis: RedisConnection, prefix: string): RunLog {
  const key = (target: string) => `${prefix}:last-run:backup:${target}`;
  return {
    walState: (target) => readWalState(redis, prefix, target),
    baseBackupRun: (target) => lastBaseBackupRun(redis, prefix, target),
    baseBackupsWatchedSince: (target, now) => baseBackupsWatchedSince(redis, prefix, target, now),
    pitrTestRun: (target) => lastPitrTestRun(redis, prefix, target),
    driftAck: (target) => readDriftAck(redis, prefix, target),
    async record(target, run) {
      await redis.set(key(target), JSON.stringify({ ...run, at: run.at.toISOString() }));
      if (!run.ok) await redis.incr(`${key(target)}:failures`);
    },
    async failures(target) {
      return Number((await redis.get(`${key(target)}:failures`)) ?? 0);
    },
    async firstSeen(target, now) {
      const seenKey = `${prefix}:first-seen:${target}`;
      await redis.set(seenKey, now.toISOString(), 'NX');
      const at = Date.parse((await redis.get(seenKey)) ?? '');
      return Number.isNaN(at) ? now : new Date(at);
    },
    async last(target) {
      const raw = await redis.get(key(target));
      if (raw === null) return null;
      const parsed = Stored.safeParse(JSON.parse(raw));
      return parsed.success ? { ...parsed.data, at: new Date(parsed.data.at) } : null;
    },
  };
}
