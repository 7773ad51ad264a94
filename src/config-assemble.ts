import { commaList, isRedisCluster, type Env } from './config-env.ts';
import type { FileConfig } from './config-file.ts';
import type { Config, TargetConfig } from './config-types.ts';
import type { HealthThresholds } from './health/types.ts';

/**
 * The valid env and config file as one Config, each section from both sources. Settings that are not set are left
 * out rather than set to undefined (exactOptionalPropertyTypes).
 */
export function assembleConfig(e: Env, file: FileConfig, targets: TargetConfig[]): Config {
  return {
    slack: slackSettings(e),
    port: e.PORT,
    metrics: { port: e.METRICS_PORT, host: e.METRICS_HOST },
    redisUrl: e.REDIS_URL,
    redisCluster: isRedisCluster(e),
    queuePrefix: e.QUEUE_PREFIX,
    backupConcurrency: e.BACKUP_CONCURRENCY,
    dumpsPerServer: e.DUMPS_PER_SERVER,
    backupDir: e.BACKUP_DIR,
    compressionLevel: e.BACKUP_COMPRESSION_LEVEL,
    ...(e.PG_BIN_DIR ? { pgBinDir: e.PG_BIN_DIR } : {}),
    pagerduty: {
      ...(e.PAGERDUTY_ROUTING_KEY ? { routingKey: e.PAGERDUTY_ROUTING_KEY } : {}),
      eventsUrl: e.PAGERDUTY_EVENTS_URL,
    },
    logLevel: e.LOG_LEVEL,
    targets,
    timezone: file.timezone,
    schedules: { retention: file.retention, reminders: file.reminders },
    restoreTest: {
      ...(e.RESTORE_TEST_DATABASE_URL ? { serverUrl: e.RESTORE_TEST_DATABASE_URL } : {}),
      smokeQueries: file.restoreTest.smokeQueries,
      jobs: file.restoreTest.jobs,
    },
    health: { intervalMinutes: file.health.intervalMinutes, thresholds: { ...healthThresholds(file.health), ...driftThresholds(file.drift) } },
    encryption: {
      recipients: commaList(e.BACKUP_ENCRYPTION_RECIPIENT),
      ...(e.BACKUP_ENCRYPTION_IDENTITY_FILE ? { identityFile: e.BACKUP_ENCRYPTION_IDENTITY_FILE } : {}),
      optedOut: file.encryption === 'none',
    },
    // The variable, when set, overrides the file either way.
    firstBackupAtStart: e.FIRST_BACKUP_AT_START === undefined ? file.firstBackupAtStart : e.FIRST_BACKUP_AT_START === 'true',
    ...(e.S3_BUCKET ? { s3: s3Settings(e, e.S3_BUCKET) } : {}),
    roles: file.roles ?? null,
    // Both lists count: the file's and the variable's users, each once.
    restore: {
      allowedUsers: [...new Set([...file.restore.allowedUsers, ...commaList(e.RESTORE_ALLOWED_USERS)])],
      expireAfterDays: file.restore.expireAfterDays ?? null,
      serverUrl: e.RESTORE_SERVER_URL ?? null,
    },
  };
}

function slackSettings(e: Env): Config['slack'] {
  return {
    ...(e.SLACK_BOT_TOKEN ? { botToken: e.SLACK_BOT_TOKEN } : {}),
    ...(e.SLACK_SIGNING_SECRET ? { signingSecret: e.SLACK_SIGNING_SECRET } : {}),
    ...(e.SLACK_APP_TOKEN ? { appToken: e.SLACK_APP_TOKEN } : {}),
    // The Web API client's base URL: method names are appended to it.
    apiUrl: e.SLACK_API_URL.endsWith('/') ? e.SLACK_API_URL : `${e.SLACK_API_URL}/`,
    channel: e.SLACK_CHANNEL,
  };
}

function s3Settings(e: Env, bucket: string): NonNullable<Config['s3']> {
  return {
    bucket,
    prefix: e.S3_PREFIX.replace(/^\/+|\/+$/g, ''),
    region: e.S3_REGION,
    ...(e.S3_ENDPOINT ? { endpoint: e.S3_ENDPOINT } : {}),
    forcePathStyle: e.S3_FORCE_PATH_STYLE === 'true',
    mode: e.S3_MODE,
  };
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

/** The file's `drift` section, as the health thresholds the data-drift condition reads. */
function driftThresholds(d: FileConfig['drift']): Partial<HealthThresholds> {
  return { driftLossRatio: d.lossPercent / 100, driftMinRows: d.minRows, driftGrowthFactor: d.growthFactor, driftPages: d.page };
}
