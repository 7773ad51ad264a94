import { resolve } from 'node:path';
import { z } from 'zod';
// Its own module: the file schema (schedules/config-schema.ts) needs it while config.ts is still loading.
import { TargetName } from './target-name.ts';

/** The environment as given: unset and empty variables alike are dropped before anything reads it. */
export type RawEnv = Record<string, string | undefined>;

const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
export type LogLevel = z.infer<typeof LogLevel>;

/** Also checks a target's `urlEnv` variable, which the file names and the schema below cannot know. */
export const PostgresUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'postgres:' || u.protocol === 'postgresql:';
  } catch {
    return false;
  }
}, 'must be a postgres:// or postgresql:// URL (the value is not shown, it may hold a password)');

/** A TCP port, said as such when it is not one (zod's own words would be "expected number, received NaN"). */
const Port = z.coerce
  .number({ error: 'a port number from 0 to 65535' })
  .int('a port number from 0 to 65535')
  .min(0, 'a port number from 0 to 65535')
  .max(65535, 'a port number from 0 to 65535');

/** One redis:// URL, or the seed nodes of a Redis Cluster separated by commas. */
const RedisUrl = z.string().refine(
  (s) =>
    commaList(s).length > 0 &&
    commaList(s).every((u) => {
      try {
        return /^rediss?:$/.test(new URL(u).protocol);
      } catch {
        return false;
      }
    }),
  'must be a redis:// or rediss:// URL, or the seed nodes of a Redis Cluster separated by commas (the value is not shown, it may hold a password)',
);

/** The env contract (README.md's table): every variable the bot reads, with its default. */
const EnvSchema = z.object({
  SLACK_BOT_TOKEN: z.string().startsWith('xoxb-', 'must be a bot token starting with xoxb-').optional(),
  SLACK_SIGNING_SECRET: z.string().min(1).optional(),
  SLACK_APP_TOKEN: z.string().startsWith('xapp-', 'must be an app-level token starting with xapp-').optional(),
  SLACK_API_URL: z.url({ protocol: /^https?$/ }).default('https://slack.com/api/'),
  SLACK_CHANNEL: z.string().min(1).default('#incidents'),
  PORT: Port.default(3000),
  /** /healthz and /metrics: a listener of their own, off the port Slack must reach from the internet. */
  METRICS_PORT: Port.default(9464),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  REDIS_URL: RedisUrl.default('redis://127.0.0.1:6379'),
  /** A single REDIS_URL that is one node of a Redis Cluster (several URLs always mean a cluster). */
  REDIS_CLUSTER: z.enum(['true', 'false']).default('false'),
  QUEUE_PREFIX: z.string().min(1).default('{pgbb}'),
  /** Backups a worker process runs at once. */
  BACKUP_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /** Dumps at once against one database server, across every worker (0: no limit). */
  DUMPS_PER_SERVER: z.coerce.number().int().min(0).max(64).default(1),
  DATABASE_URL: PostgresUrl.optional(),
  TARGET_NAME: TargetName.optional(),
  // Not on a kernel's virtual file system: Node's recursive mkdir loops for ever under /proc (QA: a backup hung at
  // full CPU, deaf to SIGTERM, on BACKUP_DIR=/proc/backups), and nothing could be stored there anyway.
  BACKUP_DIR: z
    .string()
    .min(1)
    .refine(
      (d) => !/^\/(proc|sys|dev)(\/|$)/.test(resolve(d)),
      'is on a kernel file system (/proc, /sys, /dev), where no backup can be stored: name a directory on a disk',
    )
    .default('./backups'),
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
  /** A server to restore onto when a target's own is gone (`/restore <id> --to=restore-server`). */
  RESTORE_SERVER_URL: PostgresUrl.optional(),
  FIRST_BACKUP_AT_START: z.enum(['true', 'false']).optional(),
  RESTORE_ALLOWED_USERS: z
    .string()
    .regex(/^\s*[UW][A-Z0-9]{2,}(\s*,\s*[UW][A-Z0-9]{2,})*\s*$/, 'a comma-separated list of Slack user IDs (U012ABCDEF)')
    .optional(),
});

export type Env = z.infer<typeof EnvSchema>;

/** Every variable of the contract, by name (deploy/systemd/pg-backup-bot.env is held to it by a test). */
export const ENV_VARIABLES = Object.keys(EnvSchema.shape) as Array<keyof Env>;

/** Drops unset and empty variables: an empty `FOO=` means "not set", so its default applies. */
export function withoutEmpty(env: RawEnv): RawEnv {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
}

/** The parsed env, or undefined with one problem per bad variable (named, never its value). */
export function parseEnv(cleaned: RawEnv): { env: Env | undefined; problems: string[] } {
  const parsed = EnvSchema.safeParse(cleaned);
  if (parsed.success) {
    const problems = [...clusterPrefixProblems(parsed.data), ...s3WithoutBucket(cleaned)];
    return problems.length > 0 ? { env: undefined, problems } : { env: parsed.data, problems: [] };
  }
  return { env: undefined, problems: parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`) };
}

/**
 * S3 settings without S3_BUCKET: nothing would go to S3, and backups would stay on this host's disk alone while the
 * team believes them in a bucket (QA: S3_MODE=primary with S3_ENDPOINT and no bucket started without a word).
 */
function s3WithoutBucket(cleaned: RawEnv): string[] {
  if (cleaned.S3_BUCKET !== undefined) return [];
  const given = ['S3_MODE', 'S3_ENDPOINT', 'S3_PREFIX', 'S3_REGION', 'S3_FORCE_PATH_STYLE'].filter((k) => cleaned[k] !== undefined);
  return given.length > 0 ? [`S3_BUCKET: required when ${given.join(', ')} ${given.length === 1 ? 'is' : 'are'} set; without it nothing goes to S3`] : [];
}

/** A comma-separated variable as a list, blanks dropped. */
export function commaList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Whether REDIS_URL and REDIS_CLUSTER select a Redis Cluster. */
export const isRedisCluster = (e: Pick<Env, 'REDIS_URL' | 'REDIS_CLUSTER'>) => e.REDIS_CLUSTER === 'true' || commaList(e.REDIS_URL).length > 1;

/**
 * On a Redis Cluster every key of the bot must live in one slot (BullMQ's scripts and ours touch several keys at
 * once): the queue prefix starts every key, so its hash tag decides the slot.
 */
function clusterPrefixProblems(e: Env): string[] {
  if (!isRedisCluster(e) || /\{[^}]+\}/.test(e.QUEUE_PREFIX)) return [];
  return [`QUEUE_PREFIX: must hold a hash tag such as {pgbb} on a Redis Cluster (it is "${e.QUEUE_PREFIX}"), so that every key of the bot lands in one slot`];
}

/**
 * The two variables restore_command's verbs read (cli/wal-fetch-cli.ts), parsed as the full config parses them:
 * no config file, nothing else.
 */
export function walVerbEnv(env: RawEnv): { backupDir: string; identityFile: string | undefined } {
  const e = EnvSchema.pick({ BACKUP_DIR: true, BACKUP_ENCRYPTION_IDENTITY_FILE: true }).parse(withoutEmpty(env));
  return { backupDir: e.BACKUP_DIR, identityFile: e.BACKUP_ENCRYPTION_IDENTITY_FILE };
}
