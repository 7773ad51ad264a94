import type { WorkerOptions } from '../../src/workers/index.ts';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type Config } from '../../src/config.ts';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import { startService, type Service } from '../../src/service.ts';
import { freePort } from '../../src/dev/ephemeral.ts';
import type { AuditEntry } from '../../src/audit.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { startPagerDutyServer, type PagerDutyServer } from '../support/pagerduty-server.ts';
import { sendBlockAction, sendSlashCommand, type BlockActionRequest, type SlackReply } from '../support/slack-requests.ts';
import { startSlackServer, type SlackMessage, type SlackServer } from '../support/slack-server.ts';

export const BOT_TOKEN = 'xoxb-test-0000-pgbb';
export const SIGNING_SECRET = 'test-signing-secret-8f2a';
export const ROUTING_KEY = 'R0UT1NGKEY0123456789abcdefABCDEF';
export const CHANNEL_ID = 'C0INCIDENTS';
/** Who sends slash commands unless a test says otherwise. */
export const ONCALL = 'U0ONCALL';

export interface Harness {
  config: Config;
  service: Service;
  slack: SlackServer;
  pd: PagerDutyServer;
  source: { name: string; url: string; drop(): Promise<void> };
  backupDir: string;
  /** The age identity file restores read (BACKUP_ENCRYPTION_IDENTITY_FILE); backups are encrypted to its key. */
  identityFile: string;
  eventsUrl: string;
  metricsUrl: string;
  /** Everything the bot logged, for secret scans. */
  logs: string[];
  stop(): Promise<void>;
}

/** Loads the sample shop schema (partitioned tables, triggers, domains, a materialized view, a custom aggregate). */
export async function loadSampleSchema(url: string): Promise<void> {
  await runSql(url, await readFile(new URL('../../src/dev/sample-schema.sql', import.meta.url), 'utf8'));
}

/**
 * The whole bot as `npm start` runs it — Bolt's HTTP receiver, BullMQ workers, real PostgreSQL and Redis — with
 * Slack's Web API and PagerDuty's Events API served by strict local stand-ins.
 */
export const APP_TOKEN = 'xapp-1-A0PGBBAPP-test';

export async function startHarness(opts: {
  pgUrl: string;
  redisUrl: string;
  pagerDuty?: boolean;
  socketMode?: boolean;
  env?: Record<string, string>;
  workerOptions?: WorkerOptions;
}): Promise<Harness> {
  const slack = await startSlackServer({ botToken: BOT_TOKEN, channels: { incidents: CHANNEL_ID }, ...(opts.socketMode ? { appToken: APP_TOKEN } : {}) });
  const pd = await startPagerDutyServer({ routingKey: ROUTING_KEY });
  const source = await createTestDatabase(opts.pgUrl, 'src');
  await loadSampleSchema(source.url);
  const backupDir = await mkdtemp(join(tmpdir(), 'pgbb-e2e-'));
  // A key pair per harness, as a deployer would set it up: production targets refuse unencrypted backups.
  const keyDir = await mkdtemp(join(tmpdir(), 'pgbb-e2e-key-'));
  const keys = await generateKeyPair();
  const identityFile = join(keyDir, 'backup.key');
  await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
  const config = loadConfig({
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: slack.url,
    SLACK_CHANNEL: '#incidents',
    PORT: opts.socketMode ? String(await freePort()) : '0',
    METRICS_PORT: '0',
    ...(opts.socketMode ? { SLACK_APP_TOKEN: APP_TOKEN } : {}),
    REDIS_URL: opts.redisUrl,
    QUEUE_PREFIX: `{t-${randomUUID().slice(0, 8)}}`,
    DATABASE_URL: source.url,
    TARGET_NAME: 'shop',
    BACKUP_DIR: backupDir,
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
    ...(opts.pagerDuty === false ? {} : { PAGERDUTY_ROUTING_KEY: ROUTING_KEY, PAGERDUTY_EVENTS_URL: pd.eventsUrl }),
    LOG_LEVEL: 'debug',
    ...opts.env,
  });
  const logs: string[] = [];
  const log: Logger = createLogger({
    level: config.logLevel,
    destination: new Writable({
      write(chunk, _e, cb) {
        logs.push(String(chunk));
        cb();
      },
    }),
  });
  const service = await startService(config, log, 'all', {
    pagerDutyCa: pd.ca,
    workerOptions: { progressIntervalMs: 0, schedules: false, ...opts.workerOptions },
  });
  return {
    config,
    service,
    slack,
    pd,
    source,
    backupDir,
    identityFile,
    eventsUrl: `http://127.0.0.1:${service.slack?.port}/slack/events`,
    /** /healthz and /metrics: their own listener (METRICS_PORT). */
    metricsUrl: `http://127.0.0.1:${service.http?.port}`,
    logs,
    async stop() {
      await service.stop();
      await Promise.allSettled([slack.close(), pd.close(), source.drop()]);
      await rm(backupDir, { recursive: true, force: true });
      await rm(keyDir, { recursive: true, force: true });
    },
  };
}

/** Where signed requests go: the bot's request URL, and the Slack stand-in that hands out response URLs. */
export type BotEndpoint = Pick<Harness, 'eventsUrl' | 'slack'>;

export interface SlashOptions {
  /** Defaults to ONCALL (user name `oncall`); another user's name is its id in lower case. */
  userId?: string;
  /** Sign with a wrong secret: Bolt must answer 401. */
  forge?: boolean;
  /** Unix seconds of the signature, to test the replay window. */
  timestamp?: number;
}

export interface SlashReply extends SlackReply {
  /** The ack's text (the ephemeral answer), '' when there is none. */
  text: string;
}

/** A slash command from #incidents as Slack sends it, signed, through Bolt's real HTTP receiver. */
export async function slash(bot: BotEndpoint, command: string, text: string, opts: SlashOptions = {}): Promise<SlashReply> {
  const userId = opts.userId ?? ONCALL;
  const res = await sendSlashCommand({
    url: bot.eventsUrl,
    signingSecret: SIGNING_SECRET,
    command,
    text,
    userId,
    userName: userId === ONCALL ? 'oncall' : userId.toLowerCase(),
    channelId: CHANNEL_ID,
    responseUrl: bot.slack.responseUrl(`r-${randomUUID()}`),
    ...(opts.forge ? { forge: true } : {}),
    ...(opts.timestamp ? { timestamp: opts.timestamp } : {}),
  });
  return { ...res, text: String((res.body as { text?: string }).text ?? '') };
}

export type ClickRequest = Omit<BlockActionRequest, 'url' | 'signingSecret' | 'channelId' | 'responseUrl'> & {
  /** Defaults to #incidents. */
  channelId?: string;
  /** The id of the response URL the bot answers on (for `slack.waitForResponse`); random by default. */
  responseId?: string | undefined;
};

/** A click on a message's interactive element (`block_actions`), signed as Slack signs it. */
export function click(bot: BotEndpoint, req: ClickRequest): Promise<SlackReply> {
  const { channelId = CHANNEL_ID, responseId = `r-${randomUUID()}`, ...rest } = req;
  return sendBlockAction({ ...rest, url: bot.eventsUrl, signingSecret: SIGNING_SECRET, channelId, responseUrl: bot.slack.responseUrl(responseId) });
}

/** The job id in an answer such as "… queued: job `backup-shop-…`". */
export function jobIdOf(text: string | undefined): string | undefined {
  return /job `([^`]+)`/.exec(text ?? '')?.[1];
}

/** The top-level channel message about `jobId` whose text matches, once a worker has posted or updated it so. */
export async function channelMessage(bot: Pick<Harness, 'slack'>, jobId: string, pattern: RegExp, timeoutMs = 60_000): Promise<SlackMessage> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    for (const m of bot.slack.messages.values()) {
      if (!m.thread_ts && JSON.stringify(m.blocks ?? '').includes(jobId) && pattern.test(m.text ?? '')) return m;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no channel message for ${jobId} matched ${pattern}; have: ${[...bot.slack.messages.values()].map((m) => m.text).join(' | ')}`);
}

/** The audit trail as written so far. */
export async function auditLines(h: Pick<Harness, 'backupDir'> & { service?: Pick<Service, 'deps'> }): Promise<AuditEntry[]> {
  // Commands' lines are written just after their ack: wait for what the bot has appended so far.
  await h.service?.deps.audit.flush();
  return (await readFile(join(h.backupDir, '_audit', 'audit.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as AuditEntry);
}
