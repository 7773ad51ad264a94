import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BaseBackupJobData } from '../../src/jobs/base-backup-data.ts';
import { lastBaseBackupRun } from '../../src/jobs/base-backup-runs.ts';
import { QUEUE } from '../../src/jobs/queues.ts';
import { channelMessage, startHarness, type Harness } from './harness.ts';

/**
 * A base-backup job whose worker died (killed, host lost) is reported like a failed base backup: the channel
 * message and the page under pg-backup-bot/<target>/base-backup. As in lost-jobs.test.ts, the dead worker is a real
 * BullMQ worker that takes the job and is closed by force before the bot's workers start.
 */
let h: Harness | undefined;
let redis: Redis;
const prefix = `{t-lostbb-${randomUUID().slice(0, 8)}}`;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  const queue = new Queue<BaseBackupJobData>(QUEUE.baseBackup, { connection: redis, prefix });
  const connection = redis.duplicate();
  let taken!: () => void;
  const took = new Promise<void>((resolve) => (taken = resolve));
  const dying = new Worker<BaseBackupJobData>(
    QUEUE.baseBackup,
    () => {
      taken();
      return new Promise<never>(() => undefined);
    },
    { connection, prefix, lockDuration: 1000, stalledInterval: 500 },
  );
  await (queue as unknown as Queue).add(
    'base-backup',
    { target: 'shop', label: null, requestedBy: { source: 'slack', userId: 'U0ONCALL', userName: 'oncall' } },
    { jobId: 'lost-base-backup-1' },
  );
  await took;
  await dying.close(true);
  await queue.close();
  connection.disconnect();
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: { QUEUE_PREFIX: prefix },
    workerOptions: { lockDurationMs: 500, maxStalledCount: 0 },
  });
});

afterAll(async () => {
  await h?.stop();
  redis?.disconnect();
});

describe('a base-backup job whose worker died', () => {
  it('is reported as failed in the channel, recorded for health, and pages pg-backup-bot/<target>/base-backup', async () => {
    const harness = h as Harness;
    const m = await channelMessage(harness, 'lost-base-backup-1', /^Base backup of shop FAILED: the worker running it stopped before it finished/, 30_000);
    expect(JSON.stringify(m.blocks)).toMatch(/no base backup was stored · PagerDuty page queued \(error, dedup key pg-backup-bot\/shop\/base-backup\)/);
    const page = await harness.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/base-backup', 30_000);
    expect(page.payload?.severity).toBe('error');
    expect(page.payload?.summary).toMatch(/^Base backup of shop failed: the worker running it stopped/);
    expect(page.payload?.custom_details).toMatchObject({ jobId: 'lost-base-backup-1' });
    expect(await lastBaseBackupRun(redis, prefix, 'shop')).toMatchObject({ ok: false, jobId: 'lost-base-backup-1' });
  });
});
