import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralRedis, type EphemeralRedis } from '../src/dev/ephemeral.ts';
import { watchRedis } from '../src/redis-watch.ts';
import { until } from './support/until.ts';
import { startWorkerKit, type WorkerKit } from './workers/worker-kit.ts';

/**
 * Redis gone: the channel hears of it and PagerDuty is paged once it has not answered for the threshold, through
 * neither the outbox nor the queue (both in Redis); when it answers again, both are told (QA: a 5½-minute outage
 * was silent in Slack and PagerDuty).
 */
describe('watchRedis', () => {
  let kit: WorkerKit;
  let server: EphemeralRedis;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-redis-watch-'));
    kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
    server = await startEphemeralRedis();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await server?.stop();
    await kit?.stop();
  });

  it('says and pages a Redis that does not answer, and says and resolves its return', async () => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
    redis.on('error', () => undefined);
    const said = () => [...kit.slack.messages.values()].map((m) => m.text ?? '').filter((t) => /Redis (has not answered|answers again)/.test(t));
    const marker = join(dir, 'redis-paged');
    // As the service starts it, on a short clock: a round every 200 ms, Redis down after 1.5 s.
    const start = () =>
      watchRedis({ ping: () => redis.ping(), notifier: kit.notifier, pagerDuty: kit.pagerDuty, log: kit.log, everyMs: 200, downAfterMs: 1500, marker });
    const watch = start();
    try {
      await new Promise((r) => setTimeout(r, 600));
      expect(said()).toEqual([]);
      await server.stop();
      const page = await kit.pd.waitFor((e) => e.dedup_key === 'pg-backup-bot/_bot/redis' && e.event_action === 'trigger', 20_000);
      expect(page.payload).toMatchObject({ severity: 'critical', summary: expect.stringMatching(/^pg-backup-bot: Redis does not answer/) });
      expect(said()).toEqual([
        expect.stringMatching(/^:rotating_light: Redis has not answered since .* UTC \(\d+(\.\d)? s\): no schedule, backup, restore test or health check runs/),
      ]);
      // The open page is marked on this host: a bot restarted now (it starts once Redis answers) resolves it.
      expect(existsSync(marker)).toBe(true);
      watch.stop();
      server = await startEphemeralRedis({ port: server.port });
      const restarted = start();
      try {
        await kit.pd.waitFor((e) => e.dedup_key === 'pg-backup-bot/_bot/redis' && e.event_action === 'resolve', 20_000);
        for (let i = 0; existsSync(marker) && i < 50; i++) await new Promise((r) => setTimeout(r, 100));
        expect(existsSync(marker)).toBe(false);
      } finally {
        restarted.stop();
      }
      expect(kit.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/_bot/redis').map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
      // The same outage again, with the first watch: said and resolved when Redis comes back.
      await server.stop();
      const again = start();
      await kit.pd.waitFor(
        (e) =>
          e.dedup_key === 'pg-backup-bot/_bot/redis' && e.event_action === 'trigger' && kit.pd.events.filter((x) => x.dedup_key === e.dedup_key).length > 2,
        20_000,
      );
      server = await startEphemeralRedis({ port: server.port });
      try {
        await until(
          'the second resolve',
          () => (kit.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/_bot/redis').length === 4 ? true : undefined),
          20_000,
        );
        expect(said().at(-1)).toMatch(/^:white_check_mark: Redis answers again, after .+ without/);
        // Once each per outage: one page, one resolve.
        expect(kit.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/_bot/redis').map((e) => e.event_action)).toEqual([
          'trigger',
          'resolve',
          'trigger',
          'resolve',
        ]);
        for (let i = 0; existsSync(marker) && i < 50; i++) await new Promise((r) => setTimeout(r, 100));
        expect(existsSync(marker)).toBe(false);
      } finally {
        again.stop();
      }
    } finally {
      watch.stop();
      redis.disconnect();
    }
  }, 60_000);
});
