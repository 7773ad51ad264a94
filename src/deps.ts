import { Agent } from 'node:https';
import { WebClient } from '@slack/web-api';
import type { Config } from './config.ts';
import { BotError } from './errors.ts';
import { createQueues, type Queues } from './jobs/queues.ts';
import type { Logger } from './logger.ts';
import { createEscalation, type Escalation } from './notifications/escalation.ts';
import { repeatedErrors } from './repeated-errors.ts';
import { createPagerDutyClient, type PagerDutyClient } from './notifications/pagerduty-client.ts';
import { SlackNotifier } from './notifications/slack-notifier.ts';
import { WatchedNotifier } from './notifications/watched-notifier.ts';
import { type SlackFailures, slackFailures } from './notifications/slack-failures.ts';
import type { Notifier } from './notifications/types.ts';
import { createStorageFromConfig } from './storage/index.ts';
import { createRunLog, type RunLog } from './health/index.ts';
import { createHealthState, type HealthState } from './health/index.ts';
import { createMetrics, type HealthMetrics } from './health/index.ts';
import { createAuditLog, type AuditLog } from './audit.ts';
import { cachedGroups, type GroupResolver } from './commands/roles.ts';
import type { Storage } from './storage/index.ts';
import { createRedis, redisEndpoint, type RedisConnection } from './redis-client.ts';

/** Everything with a connection, built in one place and handed down: no module-level singletons. */
export interface Deps {
  config: Config;
  log: Logger;
  /** Producer connection: fails fast (no offline queue) so a Slack ack never waits on a dead Redis. */
  redis: RedisConnection;
  /** Worker connection: BullMQ needs `maxRetriesPerRequest: null` to block and to ride out restarts. */
  workerRedis: RedisConnection;
  queues: Queues;
  storage: Storage;
  /** Copy targets (off-site): every finished backup is copied to each. */
  copies: Storage[];
  notifier: Notifier;
  slack: WebClient | null;
  pagerDuty: PagerDutyClient | null;
  escalation: Escalation;
  /** Outcome of the last backup run per target (storage only knows the successes). */
  runs: RunLog;
  healthState: HealthState;
  metrics: HealthMetrics;
  /** Channel posts Slack refused, per answer, across processes (notifications/slack-failures.ts): for /metrics. */
  slackFailures: SlackFailures;
  audit: AuditLog;
  /** Slack user-group members, for roles given as group IDs (needs the usergroups:read scope). */
  groups?: GroupResolver;
  close(): Promise<void>;
}

export interface DepsOverrides {
  notifier?: Notifier;
  storage?: Storage;
  /** Trust for a PagerDuty endpoint with a private CA (tests). Production uses the system's CAs. */
  pagerDutyCa?: string;
}

export function slackWebClient(config: Config, log: Logger): WebClient {
  if (!config.slack.botToken) throw new BotError('config_invalid', 'SLACK_BOT_TOKEN is required to post to Slack.');
  return new WebClient(config.slack.botToken, {
    slackApiUrl: config.slack.apiUrl,
    // Web API retries for ~30 min by default; a job should not hang that long on a chat message. Each call is given
    // 5 s (the client's default is none: a Slack that accepts a call and never answers held it for Node's 300 s, then
    // the retries, about 20 minutes, while the job that posted waited: QA), so at most about 25 s with the retries.
    timeout: 5000,
    retryConfig: { retries: 3, factor: 2, minTimeout: 500, maxTimeout: 5000 },
    logger: {
      debug: () => {},
      info: () => {},
      warn: (...m) => log.warn({ src: 'slack' }, m.join(' ')),
      error: (...m) => log.error({ src: 'slack' }, m.join(' ')),
      setLevel: () => {},
      getLevel: () => 'warn' as never,
      setName: () => {},
    },
  });
}

export async function createDeps(config: Config, log: Logger, overrides: DepsOverrides = {}): Promise<Deps> {
  const endpoint = redisEndpoint(config.redisUrl, config.redisCluster);
  const redis = createRedis(endpoint, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true });
  const workerRedis = createRedis(endpoint, { maxRetriesPerRequest: null, lazyConnect: true });
  // Once per minute for each distinct error: while Redis is down each connection reports every reconnect attempt.
  const redisError = repeatedErrors(log, 'redis connection error', { level: 'warn' });
  for (const r of [redis, workerRedis]) r.on('error', (err: Error) => redisError(err));
  try {
    await Promise.all([redis.connect(), workerRedis.connect()]);
  } catch (err) {
    redis.disconnect();
    workerRedis.disconnect();
    throw new BotError('config_invalid', `Cannot connect to Redis at REDIS_URL (${redactUrl(config.redisUrl)}): ${(err as Error).message}`, { cause: err });
  }
  const queues = createQueues(redis, config.queuePrefix, repeatedErrors(log, 'queue error', { level: 'warn' }));
  // S3_MODE=primary: S3 holds the backups; S3_MODE=copy: local primary, each finished backup copied to S3.
  const { primary: storage, copies } = overrides.storage ? { primary: overrides.storage, copies: [] as Storage[] } : await createStorageFromConfig(config, log);
  const slack = overrides.notifier ? null : slackWebClient(config, log);
  const slackNotifier = overrides.notifier ?? new SlackNotifier(slack as WebClient, config.slack.channel);
  const pagerDuty = config.pagerduty.routingKey
    ? createPagerDutyClient({
        eventsUrl: config.pagerduty.eventsUrl,
        routingKey: config.pagerduty.routingKey,
        ...(overrides.pagerDutyCa ? { agent: new Agent({ ca: overrides.pagerDutyCa }) } : {}),
      })
    : null;
  const audit = createAuditLog(config.backupDir, log.child({ component: 'audit' }));
  const escalation = createEscalation({
    redis: workerRedis,
    queue: queues.pagerduty,
    prefix: config.queuePrefix,
    enabled: pagerDuty !== null,
    source: 'pg-backup-bot',
  });
  // Slack's channel watched: posts that fail for 10 minutes page (not the demo's terminal, nor a test's own notifier).
  const failures = slackFailures(workerRedis, config.queuePrefix);
  const notifier = overrides.notifier ? slackNotifier : new WatchedNotifier(slackNotifier, escalation, config.slack.channel, undefined, failures);
  return {
    runs: createRunLog(workerRedis, config.queuePrefix),
    healthState: createHealthState(workerRedis, config.queuePrefix),
    metrics: createMetrics(),
    slackFailures: failures,
    audit,
    ...(slack
      ? {
          groups: cachedGroups(async (usergroup) => {
            const res = await slack.usergroups.users.list({ usergroup });
            return res.users ?? [];
          }),
        }
      : {}),
    config,
    log,
    redis,
    workerRedis,
    queues,
    storage,
    copies,
    notifier,
    slack,
    pagerDuty,
    escalation,
    async close() {
      // Slash commands' audit lines are written after their ack (commands/guard.ts): none may be left behind.
      await audit.flush();
      await queues.close();
      await Promise.allSettled([redis.quit(), workerRedis.quit()]);
    },
  };
}

/** redis://user:secret@host:6379 → redis://host:6379 (each of a comma-separated list), for messages. */
export function redactUrl(url: string): string {
  if (url.includes(','))
    return url
      .split(',')
      .map((u) => redactUrl(u.trim()))
      .join(',');
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
