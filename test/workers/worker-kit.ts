import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { WebClient } from '@slack/web-api';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.ts';
import { createRunLog, type RunLog } from '../../src/health/index.ts';
import { createQueues, type Queues } from '../../src/jobs/queues.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import { createEscalation, pageStateKey, type Escalation } from '../../src/notifications/escalation.ts';
import { createPagerDutyClient, type PagerDutyClient } from '../../src/notifications/pagerduty-client.ts';
import { SlackNotifier } from '../../src/notifications/slack-notifier.ts';
import type { Notifier } from '../../src/notifications/types.ts';
import { LocalStorage } from '../../src/storage/index.ts';
import { cappedBackoff, pagerDutyProcessor } from '../../src/workers/pagerduty-worker.ts';
import { startPagerDutyServer, type PagerDutyServer } from '../support/pagerduty-server.ts';
import { startSlackServer, type SlackMessage, type SlackServer } from '../support/slack-server.ts';

/**
 * What a worker's processor meets in production, built for one test file: real Redis (BullMQ queues under a prefix
 * of its own), a local storage in a temp directory, the strict Slack stand-in behind the real SlackNotifier, and the
 * strict PagerDuty stand-in fed by the real escalation outbox and the real PagerDuty delivery worker. A test runs
 * the processor it tests on a real BullMQ worker (`runJob`), so the job's failedReason is BullMQ's own.
 */

export const BOT_TOKEN = 'xoxb-test-0000-workers';
export const ROUTING_KEY = 'W0RKERSKEY0123456789abcdefABCDEF';
export const CHANNEL_ID = 'C0INCIDENTS';
export const requestedBy = { source: 'slack' as const, userId: 'U0ONCALL', userName: 'oncall' };

type Processor<D, R> = (job: Job<D, R>, token?: string, signal?: AbortSignal) => Promise<R>;

export interface WorkerKit {
  config: Config;
  prefix: string;
  /** A worker connection (`maxRetriesPerRequest: null`), as deps.ts builds it. */
  redis: Redis;
  queues: Queues;
  slack: SlackServer;
  /** The real SlackNotifier against the stand-in; no retries, so a Slack error reaches the worker at once. */
  notifier: Notifier;
  /** The same notifier posting to another channel (one the stand-in does not know answers `channel_not_found`). */
  notifierFor(channel: string): Notifier;
  pd: PagerDutyServer;
  pagerDuty: PagerDutyClient;
  escalation: Escalation;
  runs: RunLog;
  storage: LocalStorage;
  backupDir: string;
  log: Logger;
  logs: string[];
  /** Adds one job to a fresh queue, runs `processor` on it with a real BullMQ worker, and returns the finished job. */
  runJob<D, R>(processor: Processor<D, R>, data: unknown, opts?: { jobId?: string; attempts?: number; backoffMs?: number }): Promise<Job<D, R>>;
  /** The top-level channel message about `jobId` (its id is in the blocks), as it stands now. */
  messageAbout(jobId: string): SlackMessage | undefined;
  /** Replies in the thread of `m`, oldest first. */
  thread(m: SlackMessage): SlackMessage[];
  /** Forgets which pages are open (the escalation's Redis marks), so the next failure opens a new episode. */
  forgetPages(): Promise<void>;
  stop(): Promise<void>;
}

export async function startWorkerKit(o: { pgUrl: string; redisUrl: string; databaseUrl?: string; env?: Record<string, string> }): Promise<WorkerKit> {
  const slack = await startSlackServer({ botToken: BOT_TOKEN, channels: { incidents: CHANNEL_ID } });
  const pd = await startPagerDutyServer({ routingKey: ROUTING_KEY });
  const backupDir = await mkdtemp(join(tmpdir(), 'pgbb-workers-'));
  const prefix = `{w-${randomUUID().slice(0, 8)}}`;
  // As a deployment with `encryption: none` in its config file: these tests are about failures, not age.
  const configDir = await mkdtemp(join(tmpdir(), 'pgbb-workers-config-'));
  const botConfig = join(configDir, 'pg-backup-bot.yml');
  await writeFile(botConfig, 'encryption: none\n');
  const config = loadConfig(
    {
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_API_URL: slack.url,
      SLACK_CHANNEL: '#incidents',
      REDIS_URL: o.redisUrl,
      QUEUE_PREFIX: prefix,
      DATABASE_URL: o.databaseUrl ?? o.pgUrl,
      TARGET_NAME: 'shop',
      BACKUP_DIR: backupDir,
      PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
      PAGERDUTY_EVENTS_URL: pd.eventsUrl,
      BOT_CONFIG: botConfig,
      ...o.env,
    },
    'worker',
  );
  const logs: string[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _e, cb) {
        logs.push(String(chunk));
        cb();
      },
    }),
  });
  const redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
  const queues = createQueues(redis, prefix);
  const web = new WebClient(BOT_TOKEN, { slackApiUrl: slack.url, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true });
  const notifier = new SlackNotifier(web, config.slack.channel);
  const pagerDuty = createPagerDutyClient({ eventsUrl: pd.eventsUrl, routingKey: ROUTING_KEY, agent: new Agent({ ca: pd.ca }) });
  const escalation = createEscalation({ redis, queue: queues.pagerduty, prefix, enabled: true, source: 'pg-backup-bot' });
  const delivery = new Worker(
    queues.pagerduty.name,
    pagerDutyProcessor({ redis, prefix, client: pagerDuty, notifier, log: log.child({ worker: 'pagerduty' }) }),
    {
      connection: redis,
      prefix,
      concurrency: 1,
      // As workers/index.ts: the outbox's jobs back off by the `capped` strategy, which only the worker knows.
      settings: { backoffStrategy: (attemptsMade: number) => cappedBackoff(attemptsMade) },
    },
  );
  const started: Array<{ worker: Worker; queue: Queue }> = [];

  const kit: WorkerKit = {
    config,
    prefix,
    redis,
    queues,
    slack,
    notifier,
    notifierFor: (channel) => new SlackNotifier(web, channel),
    pd,
    pagerDuty,
    escalation,
    runs: createRunLog(redis, prefix),
    storage: new LocalStorage(backupDir, log),
    backupDir,
    log,
    logs,
    async runJob<D, R>(processor: Processor<D, R>, data: unknown, opts: { jobId?: string; attempts?: number; backoffMs?: number } = {}) {
      const queue = new Queue(`q-${randomUUID().slice(0, 8)}`, { connection: redis, prefix });
      const worker = new Worker<D, R>(queue.name, processor, { connection: redis, prefix });
      started.push({ worker: worker as unknown as Worker, queue });
      const added = await queue.add('job', data, {
        ...(opts.jobId ? { jobId: opts.jobId } : {}),
        attempts: opts.attempts ?? 1,
        ...(opts.backoffMs ? { backoff: { type: 'fixed', delay: opts.backoffMs } } : {}),
      });
      const id = added.id ?? '';
      const end = Date.now() + 45_000;
      while (Date.now() < end) {
        const state = await queue.getJobState(id);
        if (state === 'completed' || state === 'failed') return (await queue.getJob(id)) as unknown as Job<D, R>;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`job ${id} did not finish`);
    },
    messageAbout(jobId) {
      return [...slack.messages.values()].find((m) => !m.thread_ts && JSON.stringify(m.blocks ?? '').includes(jobId));
    },
    thread(m) {
      return [...slack.messages.values()].filter((r) => r.thread_ts === m.ts);
    },
    async forgetPages() {
      const keys = await redis.keys(`${pageStateKey(prefix, '').replace(/[*?[\]\\]/g, '\\$&')}*`);
      if (keys.length > 0) await redis.del(...keys);
    },
    async stop() {
      for (const s of started) {
        await s.worker.close();
        await s.queue.close();
      }
      await delivery.close();
      await queues.close();
      redis.disconnect();
      await Promise.allSettled([slack.close(), pd.close()]);
      await rm(backupDir, { recursive: true, force: true });
      await rm(configDir, { recursive: true, force: true });
    },
  };
  return kit;
}

/** Everything logged so far, one parsed line each. */
export function logLines(kit: Pick<WorkerKit, 'logs'>): Array<Record<string, unknown>> {
  return kit.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
}
