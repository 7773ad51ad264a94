import { z } from 'zod';
import { BotError } from './errors.ts';
import { readFileConfig, type FileConfig } from './config-file.ts';
// The health room's leaf of types, not its door: the door's modules read the config (a cycle through index.ts).
import type { HealthThresholds } from './health/types.ts';
import { resolvePolicy, type TargetPolicy } from './schedules/index.ts';

// Its own module: the file schema (schedules/config-schema.ts) needs it while this module is still loading.
import { TargetName } from './target-name.ts';

/** What is being started decides what is required: `offline` (demo, listing) needs neither Slack nor a target. */
export type Mode = 'all' | 'bot' | 'worker' | 'cli' | 'offline';

const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const PostgresUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'postgres:' || u.protocol === 'postgresql:';
  } catch {
    return false;
  }
}, 'must be a postgres:// or postgresql:// URL (the value is not shown, it may hold a password)');

const EnvSchema = z.object({
  SLACK_BOT_TOKEN: z.string().startsWith('xoxb-', 'must be a bot token starting with xoxb-').optional(),
  SLACK_SIGNING_SECRET: z.string().min(1).optional(),
  SLACK_APP_TOKEN: z.string().startsWith('xapp-', 'must be an app-level token starting with xapp-').optional(),
  SLACK_API_URL: z.url({ protocol: /^https?$/ }).default('https://slack.com/api/'),
  SLACK_CHANNEL: z.string().min(1).default('#incidents'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z.string().min(1).default('{pgbb}'),
  DATABASE_URL: PostgresUrl.optional(),
  TARGET_NAME: TargetName.optional(),
  BACKUP_DIR: z.string().min(1).default('./backups'),
  BACKUP_COMPRESSION_LEVEL: z.coerce.number().int().min(1).max(19).default(2),
  PG_BIN_DIR: z.string().min(1).optional(),
  PAGERDUTY_ROUTING_KEY: z.string().length(32, 'must be the 32-character Events API v2 integration key').optional(),
  PAGERDUTY_EVENTS_URL: z
    .url({ protocol: /^https$/ })
    .default('https://events.pagerduty.com/v2/enqueue')
    .refine((s) => new URL(s).pathname === '/v2/enqueue', 'must end in /v2/enqueue (the Events API v2 endpoint)'),
  LOG_LEVEL: LogLevel.default('info'),
  BOT_CONFIG: z.string().min(1).optional(),
  BACKUP_ENCRYPTION_RECIPIENT: z
    .string()
    .regex(/^\s*age1[0-9a-z]{58}(\s*,\s*age1[0-9a-z]{58})*\s*$/, 'one or more age public keys (age1…), comma separated')
    .optional(),
  BACKUP_ENCRYPTION_IDENTITY_FILE: z.string().min(1).optional(),
  S3_BUCKET: z.string().min(3).optional(),
  S3_PREFIX: z.string().default(''),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('false'),
  S3_MODE: z.enum(['primary', 'copy']).default('copy'),
  RESTORE_TEST_DATABASE_URL: PostgresUrl.optional(),
  FIRST_BACKUP_AT_START: z.enum(['true', 'false']).optional(),
  RESTORE_ALLOWED_USERS: z
    .string()
    .regex(/^\s*[UW][A-Z0-9]{2,}(\s*,\s*[UW][A-Z0-9]{2,})*\s*$/, 'a comma-separated list of Slack user IDs (U012ABCDEF)')
    .optional(),
});

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
}

export interface Config {
  slack: {
    botToken?: string;
    signingSecret?: string;
    appToken?: string;
    apiUrl: string;
    channel: string;
  };
  port: number;
  redisUrl: string;
  queuePrefix: string;
  backupDir: string;
  compressionLevel: number;
  pgBinDir?: string;
  pagerduty: { routingKey?: string; eventsUrl: string };
  logLevel: z.infer<typeof LogLevel>;
  targets: TargetConfig[];
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

/** Derives a target name from the database name in a URL: `postgres://…/Pagila_Prod` → `pagila_prod`. */
export function targetNameFromUrl(url: string): string {
  const db = decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
  const cleaned = db
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[^a-z]+/, '');
  return (cleaned || 'db').slice(0, 48);
}

/**
 * Parses the environment once, at the entry point. Every problem is listed at once; values are never echoed,
 * since most of these variables are secrets.
 */
export function loadConfig(env: Record<string, string | undefined>, mode: Mode = 'all'): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  const e = parsed.success ? parsed.data : undefined;
  const needsSlack = mode === 'all' || mode === 'bot' || mode === 'worker';
  if (needsSlack) {
    if (!cleaned.SLACK_BOT_TOKEN) {
      problems.push('SLACK_BOT_TOKEN: required (xoxb-…); `npm run demo` runs without Slack');
    }
    if (mode !== 'worker' && !cleaned.SLACK_APP_TOKEN && !cleaned.SLACK_SIGNING_SECRET) {
      problems.push('SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)');
    }
  }
  const file = readFileConfig(cleaned.BOT_CONFIG);
  problems.push(...file.problems);
  const fileTargets = file.config.targets;
  const needsTarget = mode !== 'bot' && mode !== 'offline';
  if (needsTarget && !cleaned.DATABASE_URL && fileTargets.length === 0) {
    problems.push('DATABASE_URL: required (postgres://user@host:port/dbname of the database to back up), unless the config file lists targets');
  }
  for (const t of fileTargets) {
    if (t.urlEnv === undefined) continue;
    const value = cleaned[t.urlEnv];
    if (value === undefined) problems.push(`${t.urlEnv}: required by target ${t.name} in ${file.path} (urlEnv)`);
    else if (!PostgresUrl.safeParse(value).success)
      problems.push(`${t.urlEnv} (target ${t.name}): must be a postgres:// or postgresql:// URL (the value is not shown, it may hold a password)`);
  }
  if (file.config.encryption === 'age' && !cleaned.BACKUP_ENCRYPTION_RECIPIENT) {
    problems.push('BACKUP_ENCRYPTION_RECIPIENT: required because the config file says `encryption: age` (age1… public keys)');
  }
  if (problems.length > 0 || !e) {
    throw new BotError(
      'config_invalid',
      `pg-backup-bot cannot start; fix these settings (environment variables and the config file):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  // The file's targets win; without any, one production target from DATABASE_URL on the default policy.
  const targets: TargetConfig[] =
    fileTargets.length > 0
      ? fileTargets.map((t) => ({
          name: t.name,
          url: t.url ?? cleaned[t.urlEnv ?? ''] ?? '',
          environment: t.environment,
          excludeTables: t.excludeTables,
          schemas: t.schemas,
          policy: resolvePolicy(t),
        }))
      : e.DATABASE_URL
        ? [defaultTarget(e.TARGET_NAME ?? targetNameFromUrl(e.DATABASE_URL), e.DATABASE_URL)]
        : [];
  return {
    slack: {
      ...(e.SLACK_BOT_TOKEN ? { botToken: e.SLACK_BOT_TOKEN } : {}),
      ...(e.SLACK_SIGNING_SECRET ? { signingSecret: e.SLACK_SIGNING_SECRET } : {}),
      ...(e.SLACK_APP_TOKEN ? { appToken: e.SLACK_APP_TOKEN } : {}),
      apiUrl: e.SLACK_API_URL.endsWith('/') ? e.SLACK_API_URL : `${e.SLACK_API_URL}/`,
      channel: e.SLACK_CHANNEL,
    },
    port: e.PORT,
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    backupDir: e.BACKUP_DIR,
    compressionLevel: e.BACKUP_COMPRESSION_LEVEL,
    ...(e.PG_BIN_DIR ? { pgBinDir: e.PG_BIN_DIR } : {}),
    pagerduty: {
      ...(e.PAGERDUTY_ROUTING_KEY ? { routingKey: e.PAGERDUTY_ROUTING_KEY } : {}),
      eventsUrl: e.PAGERDUTY_EVENTS_URL,
    },
    logLevel: e.LOG_LEVEL,
    targets,
    timezone: file.config.timezone,
    schedules: { retention: file.config.retention, reminders: file.config.reminders },
    restoreTest: {
      ...(e.RESTORE_TEST_DATABASE_URL ? { serverUrl: e.RESTORE_TEST_DATABASE_URL } : {}),
      smokeQueries: file.config.restoreTest.smokeQueries,
      jobs: file.config.restoreTest.jobs,
    },
    health: { intervalMinutes: file.config.health.intervalMinutes, thresholds: healthThresholds(file.config.health) },
    encryption: {
      recipients: (e.BACKUP_ENCRYPTION_RECIPIENT ?? '')
        .split(',')
        .map((r) => r.trim())
        .filter(Boolean),
      ...(e.BACKUP_ENCRYPTION_IDENTITY_FILE ? { identityFile: e.BACKUP_ENCRYPTION_IDENTITY_FILE } : {}),
      optedOut: file.config.encryption === 'none',
    },
    firstBackupAtStart: e.FIRST_BACKUP_AT_START === undefined ? file.config.firstBackupAtStart : e.FIRST_BACKUP_AT_START === 'true',
    ...(e.S3_BUCKET
      ? {
          s3: {
            bucket: e.S3_BUCKET,
            prefix: e.S3_PREFIX.replace(/^\/+|\/+$/g, ''),
            region: e.S3_REGION,
            ...(e.S3_ENDPOINT ? { endpoint: e.S3_ENDPOINT } : {}),
            forcePathStyle: e.S3_FORCE_PATH_STYLE === 'true',
            mode: e.S3_MODE,
          },
        }
      : {}),
    roles: file.config.roles ?? null,
    restore: {
      allowedUsers: [
        ...new Set([
          ...file.config.restore.allowedUsers,
          ...(e.RESTORE_ALLOWED_USERS ?? '')
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        ]),
      ],
    },
  };
}

/** A production target on the default policy, as DATABASE_URL alone describes it. */
export function defaultTarget(name: string, url: string, environment: 'production' | 'staging' = 'production'): TargetConfig {
  return { name, url, environment, excludeTables: [], schemas: [], policy: resolvePolicy({ name, environment }) };
}

export function findTarget(config: Config, name: string | undefined): TargetConfig {
  const names = config.targets.map((t) => t.name);
  if (name === undefined) {
    const first = config.targets[0];
    if (!first) throw new BotError('unknown_target', 'No backup target is configured: set DATABASE_URL.');
    return first;
  }
  const found = config.targets.find((t) => t.name === name);
  if (!found) {
    throw new BotError('unknown_target', `There is no target named "${name}". Known targets: ${names.join(', ') || 'none'}.`);
  }
  return found;
}

/** The file speaks in minutes and percent, the health code in milliseconds and ratios. */
function healthThresholds(h: FileConfig['health']): Partial<HealthThresholds> {
  return {
    ...(h.staleHours !== undefined ? { staleHours: h.staleHours } : {}),
    ...(h.staleHoursByClass !== undefined ? { staleHoursByClass: h.staleHoursByClass } : {}),
    ...(h.sizeLowRatio !== undefined ? { sizeLowRatio: h.sizeLowRatio } : {}),
    ...(h.sizeHighRatio !== undefined ? { sizeHighRatio: h.sizeHighRatio } : {}),
    ...(h.sizeWindow !== undefined ? { sizeWindow: h.sizeWindow } : {}),
    ...(h.minBytes !== undefined ? { minBytes: h.minBytes } : {}),
    ...(h.slowMinutes !== undefined ? { slowMs: h.slowMinutes * 60_000 } : {}),
    ...(h.diskFreeMinPercent !== undefined ? { diskFreeMinRatio: h.diskFreeMinPercent / 100 } : {}),
  };
}
