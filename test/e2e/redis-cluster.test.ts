import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { createQueues, type Queues } from '../../src/jobs/queues.ts';
import { walLeaseKey } from '../../src/jobs/wal-lease.ts';
import { createLogger } from '../../src/logger.ts';
import { createRedis, redisEndpoint, type RedisConnection } from '../../src/redis-client.ts';
import { gapSize, planGap } from '../../src/workers/redis-plan.ts';
import { takeSnapshot } from '../../src/workers/redis-snapshot.ts';
import { startBotProcess, type BotProcess } from '../support/bot-processes.ts';
import { createTestDatabase } from '../support/databases.ts';
import { startPagerDutyServer, type PagerDutyServer } from '../support/pagerduty-server.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { startRedisCluster, type TestRedisCluster } from '../support/redis-cluster.ts';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';
import { CHECKLIST_ACTION_ID } from '../../src/notifications/checklists.ts';
import { BOT_TOKEN, CHANNEL_ID, ROUTING_KEY, SIGNING_SECRET, channelMessage, click, jobIdOf, loadSampleSchema, slash } from './harness.ts';

/**
 * The bot and three worker processes on a three-primary Redis Cluster, as a fleet runs them: backups, the per-target
 * lock, the PagerDuty outbox, schedules, checklist state and the WAL lease all live in the cluster, in the one slot
 * the queue prefix's hash tag gives them.
 */

let cluster: TestRedisCluster;
let slack: SlackServer;
let pd: PagerDutyServer;
let source: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
let env: Record<string, string>;
let bot: BotProcess;
const workers: BotProcess[] = [];
let redis: RedisConnection;
let queues: Queues;
const prefix = `{cl-${randomBytes(4).toString('hex')}}`;
const slot = `pgbb_cluster_${randomBytes(4).toString('hex')}`;
const startedAt = Date.now();

const endpoint = () => ({ eventsUrl: bot.eventsUrl, slack });

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end)
      throw new Error(`${what} did not happen within ${timeoutMs} ms; last worker output:\n${workers.map((w) => w.output().slice(-1500)).join('\n---\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  cluster = await startRedisCluster();
  slack = await startSlackServer({ botToken: BOT_TOKEN, channels: { incidents: CHANNEL_ID } });
  pd = await startPagerDutyServer({ routingKey: ROUTING_KEY });
  source = await createTestDatabase(inject('pgUrl'), 'cl');
  await loadSampleSchema(source.url);
  dir = await mkdtemp(join(tmpdir(), 'pgbb-cluster-'));
  await writeFile(join(dir, 'pd-ca.pem'), pd.ca);
  const gone = new URL(inject('pgUrl'));
  gone.pathname = '/pgbb_no_such_database';
  // A backup every minute (to see a scheduled job fire once across three workers), a target whose database is gone
  // (its failure pages through the outbox) and PITR on shop (the WAL lease).
  await writeFile(
    join(dir, 'bot.yml'),
    [
      'timezone: UTC',
      'targets:',
      '  - name: shop',
      '    urlEnv: SHOP_URL',
      '    environment: production',
      `    pitr: { urlEnv: SHOP_REPLICATION_URL, slot: ${slot} }`,
      '    schedules:',
      "      backups: { minutely: { cron: '* * * * *', retentionClass: frequent, keepDays: 1 } }",
      '  - name: gone',
      `    url: ${gone.toString()}`,
      '    environment: staging',
      '',
    ].join('\n'),
  );
  const keys = await generateKeyPair();
  env = {
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: slack.url,
    SLACK_CHANNEL: '#incidents',
    REDIS_URL: cluster.url,
    QUEUE_PREFIX: prefix,
    BOT_CONFIG: join(dir, 'bot.yml'),
    SHOP_URL: source.url,
    SHOP_REPLICATION_URL: inject('pgUrl'),
    BACKUP_DIR: join(dir, 'backups'),
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
    PAGERDUTY_EVENTS_URL: pd.eventsUrl,
    NODE_EXTRA_CA_CERTS: join(dir, 'pd-ca.pem'),
    FIRST_BACKUP_AT_START: 'false',
    LOG_LEVEL: 'info',
  };
  bot = await startBotProcess('bot', env);
  workers.push(...(await Promise.all([1, 2, 3].map(() => startBotProcess('worker', env)))));
  redis = createRedis(redisEndpoint(cluster.url), { maxRetriesPerRequest: null, lazyConnect: true });
  await redis.connect();
  queues = createQueues(redis, prefix);
}, 180_000);

afterAll(async () => {
  await Promise.allSettled([bot, ...workers].filter(Boolean).map((p) => p.stop()));
  await queues?.close();
  await redis?.quit().catch(() => undefined);
  await withClient(inject('pgUrl'), (c) => c.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot])).catch(
    () => undefined,
  );
  await Promise.allSettled([slack?.close(), pd?.close(), source?.drop(), cluster?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe('a bot and three workers on a three-primary Redis Cluster', () => {
  it('every key of the bot sits in the prefix slot, on one primary; the planned schedulers and queue limits are there', async () => {
    const config = loadConfig(env, 'worker');
    expect(config.redisCluster).toBe(true);
    const deps = { config, queues, log: createLogger({ level: 'silent' }) };
    await until('the plan in the cluster', async () => (gapSize(await planGap(deps)) === 0 ? true : undefined));
    const slots = await Promise.all(
      cluster.nodes.map(async (n) => {
        const keys = await withNode(n.url, (c) => c.keys('*'));
        return keys.filter((k) => k.startsWith(prefix)).length;
      }),
    );
    // All of them on one node (the slot's owner), none elsewhere.
    expect(slots.filter((n) => n > 0)).toHaveLength(1);
    expect(await queues.pagerduty.getGlobalConcurrency()).toBe(1);
  });

  it('/backup now runs on one of the workers and succeeds; a second one meanwhile is answered with the running job', async () => {
    // The minutely schedule's backup of the same target is answered like a duplicate (a CI run met it): the two
    // commands go when none runs and the next one is at least 15 s away. A scheduled job can still slip in between the
    // look and the command (it waited for the per-server dump slot, so it was not active yet: a CI run met that too):
    // then the answer names it, rightly, and the command goes again once it has ended.
    let first = { text: '' };
    for (let attempt = 0; attempt < 3; attempt++) {
      await until(
        'no scheduled backup of shop running, and none due within 15 s',
        async () => {
          const running = (await queues.backup.getJobs(['active'])).some((j) => j?.data?.target === 'shop');
          return running || new Date().getSeconds() > 45 ? undefined : true;
        },
        75_000,
      );
      first = await slash(endpoint(), '/backup', 'now shop');
      if (!/already queued or running/.test(first.text)) break;
      const scheduled = await queues.backup.getJob(jobIdOf(first.text) ?? '');
      expect(scheduled?.repeatJobKey).toBe('pgbb:backup:shop:minutely');
      const ended = async () => ['completed', 'failed', 'unknown'].includes((await scheduled?.getState()) ?? 'unknown');
      await until('the scheduled backup ended', async () => ((await ended()) ? true : undefined), 90_000);
    }
    const jobId = jobIdOf(first.text) ?? '';
    expect(first.text).toMatch(/^Backup of \*shop\* queued/);
    const second = await slash(endpoint(), '/backup', 'now shop');
    expect(second.text).toContain(`already queued or running: job \`${jobId}\``);
    await channelMessage({ slack }, jobId, /succeeded/, 90_000);
    const job = await queues.backup.getJob(jobId);
    await until('the job completed', async () => ((await job?.getState()) === 'completed' ? true : undefined));
  }, 300_000);

  it('a failed backup is reported and pages PagerDuty through the outbox in the cluster', async () => {
    const jobId = jobIdOf((await slash(endpoint(), '/backup', 'now gone')).text) ?? '';
    const msg = await channelMessage({ slack }, jobId, /FAILED/, 60_000);
    expect(msg.text).toMatch(/does not exist/);
    const trigger = await pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/gone/backup', 30_000);
    expect(trigger.payload?.custom_details).toMatchObject({ jobId });
    expect(pd.rejected).toEqual([]);
    // What the plan keeper keeps for a Redis that loses its data: found by SCAN on every primary of the cluster.
    const snapshot = await until('the open page in a snapshot', async () => {
      const snap = await takeSnapshot(redis, queues, prefix, new Date());
      return snap.paged.includes('pg-backup-bot/gone/backup') ? snap : undefined;
    });
    expect(snapshot.paged).toContain('pg-backup-bot/gone/backup');
  }, 90_000);

  it('exactly one worker streams the WAL (the lease), and /backup status says it streams', async () => {
    const holder = await until('a lease holder', async () => (await redis.get(walLeaseKey(prefix, 'shop'))) ?? undefined);
    expect(holder).toBeTruthy();
    const status = await until('streaming', async () => {
      const { text } = await slash(endpoint(), '/backup', 'status');
      return /streaming since/.test(text) ? text : undefined;
    });
    expect(status).toContain(`slot \`${slot}\``);
    // One replication connection on the slot, whichever worker holds it.
    const active = await withClient(inject('pgUrl'), async (c) => (await c.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows);
    expect(active).toEqual([{ active: true }]);
  }, 60_000);

  it('checklist state lives in the cluster: two people ticking at once both count', async () => {
    expect((await slash(endpoint(), '/backup', 'checklist daily')).status).toBe(200);
    const m = await until('the daily checklist', async () =>
      [...slack.messages.values()].find((x) => !x.thread_ts && /^Daily backup checklist/.test(x.text ?? '')),
    );
    // Its state is stored in the cluster just after the post: a click in between would find nothing to tick (a CI run
    // under load clicked there). People take longer than that; the test waits for it.
    await until('the checklist tracked', async () => ((await redis.exists(`${prefix}:checklist:${m.channel}:${m.ts}`)) === 1 ? true : undefined));
    const element = JSON.stringify(m.blocks).match(/"block_id":"(checklist:daily:v1:0)"/)?.[1] ?? '';
    const options = (m.blocks ?? []).flatMap((b) =>
      ((b as { elements?: Array<{ options?: Array<{ value: string }> }> }).elements ?? []).flatMap((e) => e.options ?? []),
    );
    const [a, b] = options;
    if (!element || !a || !b) throw new Error(`no checkboxes in ${JSON.stringify(m.blocks)}`);
    // Each person's client still shows the message as posted: each selects one item.
    const tick = (userId: string, option: typeof a) =>
      click(endpoint(), {
        userId,
        messageTs: m.ts,
        message: { text: m.text, blocks: m.blocks },
        action: { type: 'checkboxes', action_id: CHECKLIST_ACTION_ID, block_id: element, selected_options: [option] },
      });
    const answers = await Promise.all([tick('U0ALICE', a), tick('U0BOB', b)]);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    const both = await until('both ticks in the message', async () => {
      const now = JSON.stringify(slack.messages.get(m.ts)?.blocks ?? []);
      return /ticked by <@U0ALICE>/.test(now) && /ticked by <@U0BOB>/.test(now) ? now : undefined;
    });
    expect(both).toContain('checklist:daily:v3:0');
  }, 60_000);

  it('the minutely schedule fires once per minute across the three workers, and its backup succeeds', async () => {
    const fired = await until(
      'a scheduled backup',
      async () => {
        const jobs = (await queues.backup.getJobs(['active', 'completed', 'failed'])) as Job[];
        return jobs.find((j) => j.repeatJobKey === 'pgbb:backup:shop:minutely' && j.timestamp > startedAt);
      },
      90_000,
    );
    await channelMessage({ slack }, fired.id ?? '', /succeeded/, 90_000);
    const same = ((await queues.backup.getJobs(['active', 'completed', 'failed', 'waiting', 'delayed'])) as Job[]).filter(
      (j) => j.repeatJobKey === 'pgbb:backup:shop:minutely' && j.opts.prevMillis === fired.opts.prevMillis && j.timestamp > startedAt,
    );
    expect(same).toHaveLength(1);
  }, 200_000);
});

async function withNode<T>(url: string, f: (c: RedisConnection) => Promise<T>): Promise<T> {
  const c = createRedis(redisEndpoint(url), { lazyConnect: true });
  await c.connect();
  try {
    return await f(c);
  } finally {
    c.disconnect();
  }
}
