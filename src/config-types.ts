import type { FileConfig } from './config-file.ts';
import type { LogLevel } from './config-env.ts';
// The health room's leaf of types, not its door: the door's modules read the config (a cycle through index.ts).
import type { HealthThresholds } from './health/types.ts';
import type { TargetPolicy } from './schedules/index.ts';

/** What is being started decides what is required: `offline` (demo, listing) needs neither Slack nor a target. */
export type Mode = 'all' | 'bot' | 'worker' | 'cli' | 'offline';

export interface TargetConfig {
  name: string;
  /** libpq connection URL; may hold a password, so it never goes to logs, argv or job data. */
  url: string;
  environment: 'production' | 'staging';
  /** pg_dump `--exclude-table` patterns (validated to a safe alphabet by the file schema). */
  excludeTables: string[];
  /** pg_dump `--schema` patterns; empty: every schema. */
  schemas: string[];
  /** Effective schedules and retention: the environment's defaults with the file's overrides. */
  policy: TargetPolicy;
  /** How deeply restore tests and full restores check the restored copy (postgres/verify). */
  verify: 'counts' | 'content' | 'full';
  /** A continuous WAL archive (postgres/pitr): the replication URL (may hold a password), the slot, the policy. */
  pitr?: {
    url: string;
    slot: string;
    walRetentionDays: number;
    rpoSeconds: number;
    /** Exact-point markers written on the source (postgres/pitr/markers.ts), or false: off. */
    markers?: { everySeconds: number } | false;
    /** WAL the slot may hold on the server before `wal-slot` fails (bytes; default 8 GiB). */
    slotMaxBytes?: number;
    /**
     * Scheduled base backups (their scheduler is in policy.baseBackup), the age health allows the newest, and whether a
     * health check that finds the window broken (a gap, a new timeline) starts one (workers/base-backup-after-break.ts).
     */
    baseBackup?: { enabled: boolean; cron: string; maxAgeHours: number; afterBreak?: boolean };
  };
}

export interface Config {
  slack: {
    botToken?: string;
    signingSecret?: string;
    appToken?: string;
    apiUrl: string;
    channel: string;
  };
  /** Slack's HTTP endpoint (HTTP mode only). */
  port: number;
  /** Where /healthz and /metrics are served, in every mode: a listener of their own, 127.0.0.1 by default. */
  metrics: { port: number; host: string };
  /** One redis:// URL, or the seed nodes of a Redis Cluster separated by commas (redis-client.ts). */
  redisUrl: string;
  /** REDIS_URL lists several nodes, or REDIS_CLUSTER=true. */
  redisCluster: boolean;
  queuePrefix: string;
  /** Backups one worker process runs at once (BACKUP_CONCURRENCY). */
  backupConcurrency: number;
  /** Dumps at once against one database server across the fleet (DUMPS_PER_SERVER; 0: no limit; workers/backup-gates.ts). */
  dumpsPerServer: number;
  backupDir: string;
  compressionLevel: number;
  pgBinDir?: string;
  pagerduty: { routingKey?: string; eventsUrl: string };
  logLevel: LogLevel;
  targets: TargetConfig[];
  /** The config file read (BOT_CONFIG, or ./pg-backup-bot.yml when present); null: none (loadConfig sets it). */
  configFile?: string | null;
  /** IANA zone every schedule, reminder and `/backup status` time is in. */
  timezone: string;
  /** Bot-wide scheduled jobs (the targets' own schedules are in `targets[].policy`). */
  schedules: Pick<FileConfig, 'retention' | 'reminders'>;
  restoreTest: {
    /** Server where scratch databases are created; by default each target's own server. */
    serverUrl?: string;
    smokeQueries: Array<{ name: string; sql: string }>;
    jobs: number;
  };
  restore: {
    /** Slack user IDs allowed to restore into an existing database. Nobody, by default. */
    allowedUsers: string[];
    /** Days after which the daily retention run drops databases restores made; null: never. */
    expireAfterDays: number | null;
    /** RESTORE_SERVER_URL: where `/restore <id> --to=restore-server` restores when the target's server is gone. */
    serverUrl: string | null;
  };
  health: {
    intervalMinutes: number;
    thresholds: Partial<HealthThresholds>;
  };
  encryption: {
    /** age public keys: backups are encrypted to all of them. Workers need no secret key. */
    recipients: string[];
    /** age identity (secret key) file: only restore tests and restores read it. */
    identityFile?: string;
    /** The config said `encryption: none`: production targets may take unencrypted backups. */
    optedOut: boolean;
  };
  /** Workers take a target's first backup when they start and it has none (health then never waits on a schedule). */
  firstBackupAtStart: boolean;
  /** S3-compatible storage: the primary store, or a copy target each finished backup is copied to. */
  s3?: { bucket: string; prefix: string; region: string; endpoint?: string; forcePathStyle: boolean; mode: 'primary' | 'copy' };
  /** Slack user/group IDs per role; null = no role config (everyone may list and back up, nobody restore into existing). */
  roles: { viewer: string[]; operator: string[]; admin: string[] } | null;
}
