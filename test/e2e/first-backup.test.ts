import { randomUUID } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { QUEUE, type BackupJobData } from '../../src/jobs/queues.ts';
import { createLogger } from '../../src/logger.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import { takeFirstBackups } from '../../src/workers/first-backups.ts';
import { healthProcessor } from '../../src/workers/health-worker.ts';
import { tempStorage } from '../support/postgres-helpers.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * A new install, as `npm start` runs it (schedules on: the health job runs at once, as BullMQ runs an `every`
 * scheduler's first job immediately): no backup yet is no page, the bot backs the target up itself, and a page is
 * resolved by the backup that fixes it, seconds later, not at the next health run 15 minutes on.
 */

const HOUR = 3600_000;

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const found = await probe();
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const staleEvents = (h: Harness) => h.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/shop/stale');
const posts = (h: Harness, pattern: RegExp) => [...h.slack.messages.values()].filter((m) => pattern.test(m.text ?? ''));

/** No page still on its way: the outbox queue has nothing waiting, delayed or running. */
async function pagesDelivered(h: Harness): Promise<void> {
  await until('PagerDuty deliveries', async () => {
    const c = await h.service.deps.queues.pagerduty.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
    return Object.values(c).every((n) => n === 0);
  });
}

describe('a fresh install without a first backup at start', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      pgUrl: inject('pgUrl'),
      redisUrl: inject('redisUrl'),
      env: { FIRST_BACKUP_AT_START: 'false' },
      workerOptions: { schedules: true },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('warns that there is no backup yet, pages nobody, and pages critical once the first scheduled backup is overdue', async () => {
    const deps = h.service.deps;
    await until('the health job at start', async () => (await deps.queues.health.getCompletedCount()) >= 1);
    const stored = (await deps.healthState.read('shop')).stale;
    expect(stored).toMatchObject({ status: 'failing', quiet: true });
    expect(stored?.evidence).toMatch(/^no backup of shop yet; the first scheduled backup is due at \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    await pagesDelivered(h);
    expect(staleEvents(h)).toEqual([]);
    expect(posts(h, /backup too old/)).toEqual([]);
    const health = (await slash(h, '/backup', 'health')).text;
    expect(health).toMatch(/:warning: backup too old: no backup of shop yet; the first scheduled backup is due at/);
    expect(await deps.storage.list('shop')).toEqual([]);

    // Eight hours on, the 6-hourly backup has been due for over an hour and there is still none: now it pages.
    const clock = new Date(Date.now() + 8 * HOUR);
    const run = healthProcessor({ ...deps, state: deps.healthState, backupQueue: deps.queues.backup, now: () => clock });
    expect((await run({ id: 'health-overdue' } as Job)).failing).toContain('shop/stale');
    const trigger = await h.pd.waitFor((e) => e.dedup_key === 'pg-backup-bot/shop/stale' && e.event_action === 'trigger', 30_000);
    expect(trigger.payload?.severity).toBe('critical');
    expect(trigger.payload?.summary).toMatch(/no backup of shop yet \(the first was due at/);
    expect(posts(h, /shop: backup too old/)).toHaveLength(1);
  });

  it('resolves the page within seconds of the backup that fixes it, without waiting for the next health run', async () => {
    const deps = h.service.deps;
    const healthRuns = await deps.queues.health.getCompletedCount();
    const jobId = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await channelMessage(h, jobId, /succeeded/);
    const done = Date.now();
    const resolve = await h.pd.waitFor((e) => e.dedup_key === 'pg-backup-bot/shop/stale' && e.event_action === 'resolve', 10_000);
    expect(resolve.event_action).toBe('resolve');
    expect(Date.now() - done).toBeLessThan(10_000);
    await until('the cleared post', async () => posts(h, /shop: backup too old cleared/).length === 1);
    expect((await deps.healthState.read('shop')).stale?.status).toBe('ok');
    // The health job did not run in between: the check after the backup did it.
    expect(await deps.queues.health.getCompletedCount()).toBe(healthRuns);
    expect(staleEvents(h).map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
  });
});

describe('a fresh install with a first backup at start (the default)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), workerOptions: { schedules: true } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('backs the target up at once, labelled, kept as its longest-kept schedule; nothing pages', async () => {
    const deps = h.service.deps;
    const [first] = await until<Manifest[]>('the first backup', async () => {
      const list = await deps.storage.list('shop');
      return list.length > 0 && list;
    });
    expect(first).toMatchObject({
      label: 'first backup',
      kind: 'scheduled',
      retentionClass: 'daily',
      requestedBy: { source: 'schedule', userName: 'first backup at start' },
    });
    await channelMessage(h, first?.jobId ?? '', /Backup of shop succeeded/);
    // Judged again right after the backup: the stale condition is ok within seconds, whatever the health job saw.
    await until('stale ok', async () => (await deps.healthState.read('shop')).stale?.status === 'ok', 10_000);
    await pagesDelivered(h);
    expect(staleEvents(h)).toEqual([]);
    expect(posts(h, /backup too old/)).toEqual([]);
    expect(await deps.storage.list('shop')).toHaveLength(1);
  });

  it('checks the target again when a restore test ends, too', async () => {
    const deps = h.service.deps;
    expect((await deps.healthState.read('shop'))['restore-test-failing']?.evidence).toBe('no restore test recorded');
    // Never tested is not paged, and not shown as a check that passed either.
    expect((await slash(h, '/backup', 'health shop')).text).toContain(':white_circle: last restore test: no restore test recorded');
    const jobId = jobIdOf((await slash(h, '/restore-test', 'latest')).text) ?? '';
    await channelMessage(h, jobId, /passed/, 120_000);
    await until(
      'the restore test in the health state',
      async () => /^restore test of shop-\S+ at .+ passed$/.test((await deps.healthState.read('shop'))['restore-test-failing']?.evidence ?? ''),
      10_000,
    );
    expect((await slash(h, '/backup', 'health shop')).text).toMatch(/:white_check_mark: last restore test: restore test of shop-\S+ at .+ passed/);
  }, 150_000);
});

describe('takeFirstBackups', () => {
  it('queues one backup per target without any, however many workers start at once', async () => {
    const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    const queue = new Queue<BackupJobData>(QUEUE.backup, { connection: redis, prefix: `{first-${randomUUID().slice(0, 8)}}` });
    const { storage, cleanup } = await tempStorage();
    try {
      const config = loadConfig({ DATABASE_URL: 'postgres://pgbb@127.0.0.1:1/shop', TARGET_NAME: 'shop' }, 'offline');
      const log = createLogger({ level: 'silent' });
      const runs = await Promise.all([1, 2, 3].map(() => takeFirstBackups({ config, storage, queue, log })));
      expect(runs.flat()).toHaveLength(1);
      const jobs = await queue.getJobs(['waiting']);
      expect(jobs.map((j) => j.data)).toEqual([
        {
          target: 'shop',
          kind: 'scheduled',
          label: 'first backup',
          requestedBy: { source: 'schedule', userName: 'first backup at start' },
          schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 },
        },
      ]);
      // A later start while it still waits adds nothing either.
      expect(await takeFirstBackups({ config, storage, queue, log })).toEqual([]);
      expect(await queue.getJobCountByTypes('waiting')).toBe(1);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      await redis.quit();
      await cleanup();
    }
  });
});
