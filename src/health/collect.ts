import type { Config } from '../config.ts';
import type { Queue } from 'bullmq';
import type { BackupJobData } from '../jobs/queues.ts';
import type { Storage } from '../storage/index.ts';
import { evaluateHealth } from './conditions.ts';
import type { RunLog } from './last-runs.ts';
import type { BaseBackupHealth, ConditionResult, DamagedItem, HealthCondition, HealthInput, HealthThresholds, RestoreTestSummary } from './types.ts';
import type { WalHealthFacts } from './wal-types.ts';

export interface HealthSources {
  storage: Storage;
  /** Null when Redis cannot be asked (the `check` CLI from cron): storage-based conditions are still judged. */
  runs: RunLog | null;
  backupQueue: Queue<BackupJobData> | null;
  thresholds?: Partial<HealthThresholds>;
  /** Per target, in preference to `thresholds`: the stale limit follows each target's schedule (target-thresholds.ts). */
  thresholdsFor?: (target: string) => Partial<HealthThresholds>;
  /**
   * Whether a target's backups must be encrypted (production targets, unless the config says `encryption: none`).
   * Default: every target, since every target configured from DATABASE_URL is production.
   */
  encryptionRequired?: (target: string) => boolean;
  /** Whether a target has point-in-time recovery (a `pitr` section): its WAL stream is then judged too. */
  pitr?: (target: string) => boolean;
  /** A point-in-time-recovery target's archive (window, gaps) and slot on the server, read once per check. */
  walHealth?: (target: string) => Promise<WalHealthFacts>;
  /**
   * When a target that was never backed up is due its first backup (target-thresholds.ts firstBackupDue), counted
   * from when the bot first watched it (the run log, in Redis). Without it, or without Redis, a target with no
   * backup is critical at once.
   */
  firstBackupDue?: (target: string, since: Date) => Date;
  /** A target with point-in-time recovery: its newest base backup and the age allowed (sources.ts); else undefined. */
  baseBackups?: (target: string) => Promise<Pick<BaseBackupHealth, 'newest' | 'maxAgeHours'> | undefined>;
}

/** The base-backup condition's input: storage's newest, and from Redis (when it can be asked) the last run. */
async function baseBackupHealth(sources: HealthSources, target: string, now: Date): Promise<BaseBackupHealth | undefined> {
  const found = await sources.baseBackups?.(target);
  if (!found) return undefined;
  const [lastRun, watchedSince] = sources.runs
    ? await Promise.all([sources.runs.baseBackupRun(target), sources.runs.baseBackupsWatchedSince(target, now)])
    : [null, null];
  return { ...found, lastRun, watchedSince };
}

/** Gathers what the health conditions need for one target, from storage, Redis and the queue. */
export async function collectHealthInput(sources: HealthSources, target: string, now: Date): Promise<HealthInput> {
  const [backups, lastBackupRun, records, active, disk, firstSeen, wal, walHealth, baseBackup, driftAck, pitrTest] = await Promise.all([
    sources.storage.list(target),
    sources.runs ? sources.runs.last(target) : Promise.resolve(null),
    sources.storage.listRecords('restore-test', target),
    sources.backupQueue ? sources.backupQueue.getJobs(['active']) : Promise.resolve([]),
    sources.storage.freeSpace ? sources.storage.freeSpace() : Promise.resolve(null),
    // Asked on every check, not only without backups: a target whose backups all vanish later is long past its due.
    sources.runs && (sources.firstBackupDue || sources.pitr?.(target)) ? sources.runs.firstSeen(target, now) : Promise.resolve(null),
    sources.runs && sources.pitr?.(target) ? sources.runs.walState(target).then((state) => ({ state })) : Promise.resolve(undefined),
    sources.walHealth && sources.pitr?.(target) ? sources.walHealth(target) : Promise.resolve(undefined),
    baseBackupHealth(sources, target, now),
    sources.runs ? sources.runs.driftAck(target) : Promise.resolve(null),
    sources.runs && sources.pitr?.(target) ? sources.runs.pitrTestRun(target) : Promise.resolve(undefined),
  ]);
  // Known once list() has read them: it sets them aside as it goes. WAL lost from the archive is damage too.
  const lostWal = (walHealth?.archive.lost ?? []).map(
    (name): DamagedItem => ({
      wal: true,
      backupId: `WAL ${name}`,
      why: 'indexed as archived, its file is gone from the archive: the recoverable window has a hole there until retention passes it',
    }),
  );
  const aside = walHealth?.archive.setAside;
  const setAside = [
    ...(aside?.wal ?? []).map(
      (name): DamagedItem => ({
        wal: true,
        setAside: true,
        backupId: `WAL ${name}`,
        why: 'its stored file was read three times, never as recorded (by the checksum scrub, or by a fetch of it), and moved aside (.damaged): the recoverable window has a hole there until retention passes it',
      }),
    ),
    ...(aside?.bases ?? []).map(
      (id): DamagedItem => ({
        wal: true,
        setAside: true,
        backupId: `base backup ${id}`,
        why: `the checksum scrub read its stored file three times, never as recorded, and moved its record aside (base.json.damaged): no recovery starts from it; take a base backup (\`pg-backup-bot base-backup ${target}\`) and delete its directory once looked at`,
      }),
    ),
  ];
  const damaged = [
    // One past its deadline is retention's to delete at its next run: not paged for (damaged-condition.ts), but no
    // good backup either, which `stale` says (QA: "no backup yet" with three damaged ones stored).
    ...(sources.storage.damaged?.(target) ?? []).map(
      ({ backupId, why, archiveIntact, expired }): DamagedItem => ({
        backupId,
        why,
        ...(archiveIntact ? { archiveIntact } : {}),
        ...(expired ? { expired: true as const } : {}),
      }),
    ),
    ...lostWal,
    ...setAside,
  ];
  // A successful run recorded with nothing in storage is a target whose backups were lost, not a new one.
  const neverBackedUp = backups.length === 0 && lastBackupRun?.ok !== true;
  const firstBackupDueAt = neverBackedUp && firstSeen && sources.firstBackupDue ? sources.firstBackupDue(target, firstSeen) : null;
  const lastTest = records[0];
  const newest = backups.reduce<(typeof backups)[number] | undefined>((a, b) => (!a || Date.parse(b.startedAt) > Date.parse(a.startedAt) ? b : a), undefined);
  const required = sources.encryptionRequired?.(target) ?? true;
  const thresholds = sources.thresholdsFor?.(target) ?? sources.thresholds;
  const lastRestoreTest: RestoreTestSummary | null = lastTest
    ? {
        passed: lastTest.passed === true,
        at: new Date(lastTest.startedAt),
        problems: lastTest.problems,
        backupId: lastTest.backupId,
        durationMs: lastTest.restoreMs,
      }
    : null;
  return {
    target,
    now,
    backups,
    damaged,
    running: active.filter((j) => j.data.target === target).map((j) => ({ jobId: j.id ?? '', startedAt: new Date(j.processedOn ?? j.timestamp) })),
    lastBackupRun,
    lastRestoreTest,
    disk,
    // Every artifact counts: globals hold role password hashes.
    encrypted: required && newest ? newest.artifacts.every((a) => a.encryption !== null) : null,
    ...(thresholds ? { thresholds } : {}),
    ...(firstBackupDueAt ? { firstBackupDueAt } : {}),
    ...(wal ? { wal: { ...wal, ...(firstSeen ? { firstSeen } : {}) } } : {}),
    ...(walHealth ? { walHealth } : {}),
    ...(baseBackup ? { baseBackup } : {}),
    ...(pitrTest !== undefined ? { pitrTest } : {}),
    driftAck,
  };
}

export async function checkTarget(sources: HealthSources, target: string, now: Date): Promise<{ input: HealthInput; results: ConditionResult[] }> {
  const input = await collectHealthInput(sources, target, now);
  return { input, results: evaluateHealth(input) };
}

/** What Redis alone tells of a point-in-time-recovery target: its WAL stream, its copy to S3, its RPO. */
const FROM_REDIS: ReadonlySet<HealthCondition> = new Set(['wal-stream', 'wal-offsite', 'rpo']);

/**
 * The conditions still judged when the target's storage cannot be read (an S3 outage with S3_MODE=primary, an
 * unmounted disk): the WAL stream's state and RPO, which the worker keeps in Redis, judged as a full check would
 * (the starting grace included). The RPO climbing through an outage pages as itself, not only as "cannot be checked".
 * None for a target without point-in-time recovery, or without Redis.
 */
export async function checkFromRedis(sources: HealthSources, target: string, now: Date): Promise<ConditionResult[]> {
  if (!sources.runs || !sources.pitr?.(target)) return [];
  const [state, firstSeen] = await Promise.all([sources.runs.walState(target), sources.runs.firstSeen(target, now)]);
  const input: HealthInput = {
    target,
    now,
    backups: [],
    running: [],
    lastBackupRun: null,
    lastRestoreTest: null,
    disk: null,
    wal: { state, ...(firstSeen ? { firstSeen } : {}) },
  };
  return evaluateHealth(input).filter((r) => FROM_REDIS.has(r.condition));
}

/** Production targets must be encrypted unless the config opted out; staging may go without. */
export function encryptionRequired(config: Config): (target: string) => boolean {
  return (target) => !config.encryption.optedOut && config.targets.find((t) => t.name === target)?.environment !== 'staging';
}
