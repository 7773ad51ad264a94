import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type EphemeralRedis, startEphemeralRedis } from '../../src/dev/ephemeral.ts';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { type BotProcess, startBotProcess } from '../support/bot-processes.ts';
import { createTestDatabase } from '../support/databases.ts';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';
import { BOT_TOKEN, SIGNING_SECRET } from './harness.ts';

/**
 * A Redis outage as the logs show it: `pg-backup-bot worker` (a process of its own, as deployed) while its Redis is
 * down for 8 s. Every connection, queue and worker reports each reconnect attempt; once wrote about 1,200 lines in
 * 20 s, most of them stack traces BullMQ printed with console.error for queues nobody listened to. Now: JSON lines
 * only, each distinct error once, and the worker healthy again after.
 */
describe('a Redis outage in the logs', () => {
  let slack: SlackServer;
  let redis: EphemeralRedis;
  let dir: string;
  let dbDrop: () => Promise<void>;
  let worker: BotProcess | null = null;

  beforeAll(async () => {
    slack = await startSlackServer({ botToken: BOT_TOKEN, channels: { incidents: 'C0INCIDENTS' } });
    redis = await startEphemeralRedis();
    const db = await createTestDatabase(inject('pgUrl'), 'outage');
    dbDrop = db.drop;
    dir = await mkdtemp(join(tmpdir(), 'pgbb-outage-'));
    worker = await startBotProcess('worker', {
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_API_URL: slack.url,
      SLACK_CHANNEL: '#incidents',
      REDIS_URL: redis.url,
      DATABASE_URL: db.url,
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_RECIPIENT: (await generateKeyPair()).recipient,
      FIRST_BACKUP_AT_START: 'false',
      LOG_LEVEL: 'info',
    });
  }, 90_000);

  afterAll(async () => {
    await worker?.stop();
    await Promise.allSettled([slack?.close(), redis?.stop(), dbDrop?.()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes JSON lines only, each error once, and is healthy again when Redis is back', async () => {
    const w = worker as BotProcess;
    const before = w.output().length;
    await redis.stop();
    await new Promise((r) => setTimeout(r, 8_000));
    redis = await startEphemeralRedis({ port: redis.port });
    const end = Date.now() + 30_000;
    const healthy = async () => (await fetch(`${w.metricsUrl}/healthz`).catch(() => null))?.status === 200;
    // Healthy again, and the plan put back into the empty Redis (a line of its own).
    while (!((await healthy()) && /Redis lost its data/.test(w.output().slice(before))) && Date.now() < end) await new Promise((r) => setTimeout(r, 250));
    expect(await healthy()).toBe(true);
    const lines = w.output().slice(before).split('\n').filter(Boolean);
    const notJson = lines.filter((l) => !l.startsWith('{'));
    expect(notJson).toEqual([]);
    const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    const count = (m: string) => msgs.filter((x) => x === m).length;
    // The outage is said (the connection, and the workers), once per distinct error within the minute.
    expect(count('redis connection error')).toBeGreaterThanOrEqual(1);
    for (const m of ['redis connection error', 'queue error', 'worker error']) expect(count(m)).toBeLessThanOrEqual(3);
    expect(lines.length).toBeLessThan(40);
  }, 90_000);
});
