import { QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { BackupJobData } from '../../src/jobs/queues.ts';
import { jobIdOf, slash, startHarness, type Harness } from './harness.ts';
import { duplicateRedis } from '../../src/redis-client.ts';

/**
 * A schedule's backup job carries no deduplication id (BullMQ ignores it for scheduler jobs), so without the
 * worker's per-target lock it would dump beside a manual backup of the same target.
 */
let h: Harness;
let events: QueueEvents;

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), workerOptions: { backupConcurrency: 2, backupLockRetryMs: 200 } });
  const q = h.service.deps.queues.backup;
  events = new QueueEvents(q.name, { connection: duplicateRedis(h.service.deps.workerRedis, { maxRetriesPerRequest: null }), prefix: h.config.queuePrefix });
  await events.waitUntilReady();
});

afterAll(async () => {
  await events?.close();
  await h?.stop();
});

const scheduled: BackupJobData = {
  target: 'shop',
  kind: 'scheduled',
  label: null,
  requestedBy: { source: 'schedule', userName: 'schedule daily' },
  schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 },
};

describe('one backup of a target at a time', () => {
  it('runs a scheduled backup after the manual one of the same target, never beside it, and both finish', async () => {
    const q = h.service.deps.queues.backup;
    // Both at once, as a 02:00 schedule meets someone's /backup now; the worker may run two jobs at a time.
    const manual = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    const job = await q.add('scheduled-backup', scheduled);
    const [a, b] = await Promise.all([(await q.getJob(manual))?.waitUntilFinished(events, 60_000), job.waitUntilFinished(events, 60_000)]);
    expect([a, b].every((r) => typeof (r as { backupId?: string }).backupId === 'string')).toBe(true);
    const made = (await h.service.deps.storage.list('shop')).sort((x, y) => Date.parse(x.startedAt) - Date.parse(y.startedAt));
    expect(made.map((m) => m.kind).sort()).toEqual(['manual', 'scheduled']);
    const [first, second] = made;
    // The second started only once the first had finished.
    expect(Date.parse(second?.startedAt ?? '')).toBeGreaterThanOrEqual(Date.parse(first?.finishedAt ?? ''));
    // The lock is gone once both are done.
    expect(await h.service.deps.workerRedis.exists(`${h.config.queuePrefix}:lock:backup:shop`)).toBe(0);
  });
});
