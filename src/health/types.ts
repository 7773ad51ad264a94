// The storage room's leaf of schemas, not its door: config.ts reads these types, and the door's copy.ts reads the config.
import type { Manifest, RetentionClass } from '../storage/manifest.ts';
import type { WalHealthFacts } from './wal-types.ts';

/** The checks, in the order they are reported. Each name is the last part of its dedup key `pg-backup-bot/<target>/<condition>`. */
export const HEALTH_CONDITIONS = [
  'stale',
  'damaged',
  'size',
  'data-drift',
  'slow',
  'disk',
  'backup-failing',
  'restore-test-failing',
  'unencrypted',
  'wal-stream',
  'wal-gap',
  'wal-slot',
  'wal-offsite',
  'base-backup',
  'pitr-test-failing',
  'rpo',
  'unchecked',
] as const;
export type HealthCondition = (typeof HEALTH_CONDITIONS)[number];

export type HealthStatus = 'ok' | 'failing';
export type HealthSeverity = 'critical' | 'error' | 'warning';

export interface ConditionResult {
  condition: HealthCondition;
  status: HealthStatus;
  /**
   * The severity this condition pages with when failing; fixed per condition so an episode never changes its page
   * (the quiet warning of a target waiting for its first backup aside: it never pages).
   */
  severity: HealthSeverity;
  /** One sentence naming the target and the condition, for PagerDuty and Slack. */
  summary: string;
  /** The numbers behind the verdict, for people: "146 MB, −62 % vs median 384 MB of the previous 7". */
  evidence: string;
  /** stale: age in ms; size: bytes of the newest backup; slow: longest duration in ms; disk: free ratio (0–1); rpo: seconds. */
  value?: number;
  /**
   * Failing, but not worth waking anyone: shown by `/backup health`, `check` and /metrics, never paged or posted.
   * Only a target waiting for its first scheduled backup is judged so (backup-conditions.ts staleCondition).
   */
  quiet?: true;
  /**
   * Passing only because nothing could be judged: no backup, no run or test recorded, a measurement not available yet.
   * Never paged, as any passing result; `/backup health` shows it ⚪, not ✅, so "no restore test recorded" never reads
   * as a restore test that passed.
   */
  unjudged?: true;
  /** Posted in the channel but never paged (data-drift unless the config's `drift.page` is true). */
  unpaged?: true;
  /** What an Acknowledge button on the posted failure carries (data-drift: the newer backup's id); absent: no button. */
  acknowledge?: string;
  /**
   * What this failure is about, when one condition can fail for one thing after another without clearing between
   * them (data-drift: the newer backup's id). A failing result with another episode than the remembered one is new:
   * posted (and paged) again, so a second table's loss in the next backup is never folded into the first's.
   */
  episode?: string;
}

export interface HealthThresholds {
  /** Newest backup (by startedAt) older than this is stale. */
  staleHours: number;
  /** When any class is set here, only the configured classes are checked, each against its own limit. */
  staleHoursByClass: Partial<Record<RetentionClass, number>>;
  sizeLowRatio: number;
  sizeHighRatio: number;
  /** How many backups before the newest make up the median. */
  sizeWindow: number;
  /** An absolute floor: a newest backup smaller than this fails whatever the history says. */
  minBytes: number | null;
  slowMs: number;
  diskFreeMinRatio: number;
  /** data-drift: a table that lost more than this share of its rows (0–1), and at least driftMinRows of them. */
  driftLossRatio: number;
  driftMinRows: number;
  /** A table that grew more than this factor (by at least driftMinRows rows) is named in the size evidence. */
  driftGrowthFactor: number;
  /** data-drift pages (severity error) instead of being posted as a warning. */
  driftPages: boolean;
}

export const DEFAULT_THRESHOLDS: HealthThresholds = {
  staleHours: 25,
  staleHoursByClass: {},
  sizeLowRatio: 0.5,
  sizeHighRatio: 1.5,
  sizeWindow: 7,
  minBytes: null,
  slowMs: 2 * 60 * 60 * 1000,
  diskFreeMinRatio: 0.2,
  driftLossRatio: 0.5,
  driftMinRows: 1000,
  driftGrowthFactor: 10,
  driftPages: false,
};

/** Median needs at least this many earlier backups: with one or two, a single odd backup would set the norm. */
export const MIN_SIZE_HISTORY = 3;

export interface BackupRunSummary {
  ok: boolean;
  at: Date;
  reason: string | null;
  jobId: string | null;
}

export interface RestoreTestSummary {
  passed: boolean;
  at: Date;
  problems: string[];
  backupId: string;
  /** Restore time (RTO); only the metrics use it. */
  durationMs?: number;
}

/** What the `damaged` condition names: a backup listing left out (storage damaged()), or a WAL file lost (`wal`). */
export interface DamagedItem {
  /** A backup id, or `WAL <segment>`. */
  backupId: string;
  why: string;
  /** A file of the point-in-time archive, not a backup: a WAL file indexed as archived whose file is gone (wal-index.ts lostWal), or one set aside. */
  wal?: true;
  /** Found damaged by the archive's checksum scrub and moved aside (pitr-scrub.ts): a WAL file or a base backup. */
  setAside?: true /** A backup whose roles file alone is damaged: its database archive restores (storage DamagedBackup). */;
  archiveIntact?: true;
  /** Past its retention deadline: retention's to delete at its next run, not paged; still no good backup (stale says so). */
  expired?: true;
}

export interface HealthInput {
  target: string;
  now: Date;
  /** Finished backups of this target, any order. */
  backups: Manifest[];
  /** Stored backups of this target that listing found damaged (left out of `backups`), and WAL lost; absent: not known. */
  damaged?: DamagedItem[];
  /** Backup jobs of this target running now. */
  running: Array<{ jobId: string; startedAt: Date }>;
  lastBackupRun: BackupRunSummary | null;
  lastRestoreTest: RestoreTestSummary | null;
  disk: { totalBytes: number; freeBytes: number } | null;
  /**
   * Whether the newest backup of a target that must be encrypted (production) is: false fails `unencrypted`.
   * null or absent: encryption is not required there, or there is no backup yet.
   */
  encrypted?: boolean | null;
  thresholds?: Partial<HealthThresholds>;
  /**
   * Set when the target has never been backed up (no finished backup, no successful run): when its first scheduled
   * backup is due, counted from when the bot first watched it. Until then (plus a grace) "no backup yet" is a
   * warning, not a page. Absent: judged as any target without a backup, critical.
   */
  firstBackupDueAt?: Date;
  /**
   * A target with point-in-time recovery: its WAL stream as the worker last wrote it (`state` null: no worker has
   * written one). Absent for other targets, or when Redis cannot be asked: then `wal-stream` and `rpo` are not judged.
   */
  wal?: {
    state: ({ receiver: 'up' | 'down' | 'not started'; since: string; error?: string; lastArchived?: string } & WalRpoFields) | null;
    /** When the bot first saw the target: with no state yet, its stream, slot and RPO get a start-up grace from then. */
    firstSeen?: Date;
  };
  /** A target with point-in-time recovery: its archive's window and gaps, and its slot on the server (wal-gap, wal-slot). */
  walHealth?: WalHealthFacts;
  /** A target with point-in-time recovery: its base backups (health/base-backup-condition.ts). Absent: not judged. */
  baseBackup?: BaseBackupHealth;
  /**
   * A target with point-in-time recovery: its last PITR restore test (the worker's run log in Redis), null when none
   * is recorded; absent for other targets, or when Redis cannot be asked.
   */
  pitrTest?: BackupRunSummary | null;
  /** The data drift an operator acknowledged (its newer backup), from Redis; absent or null: none. */
  driftAck?: DriftAck | null;
}

/** An acknowledged data drift: the newer backup of the pair, who clicked and when. */
export interface DriftAck {
  backupId: string;
  by: string;
  at: string;
}

export interface BaseBackupHealth {
  /** The newest finished base backup, or null when there is none. */
  newest: { id: string; finishedAt: string; bytes?: number } | null;
  /** The last base-backup run (the worker's run log in Redis); null: none recorded, or Redis not asked. */
  lastRun: BackupRunSummary | null;
  /** When the bot first watched this target's base backups; null: unknown (no Redis), judged as long ago. */
  watchedSince: Date | null;
  /** The newest may be this old (config `pitr.baseBackup.maxAgeHours`, 192 by default: weekly plus a day). */
  maxAgeHours: number;
  /** Base backups the checksum scrub set aside as damaged (ids, oldest first): taken, but no longer chosen. */
  setAside?: string[];
}

/** The measured RPO and the off-site copy, as the worker writes them beside the WAL stream's state (jobs/wal-state.ts StoredWalState). */
export type WalRpoFields = Partial<
  Record<
    | 'rpoObjectiveSeconds'
    | 'rpoMeasuredAt'
    | 'rpoBehindSince'
    | 'rpoError'
    | 'currentLsn'
    | 'archivedLsn'
    | 'flushedLsn'
    | 'flushedMovedAt'
    | 'partialError'
    | 'clockSkewMs'
    | 'offsiteWhere'
    | 'offsiteNewest'
    | 'offsitePending'
    | 'offsiteCheckedAt'
    | 'offsiteError'
    | 'offsiteFailingSince'
    | 'offsiteRole',
    string
  >
>;
