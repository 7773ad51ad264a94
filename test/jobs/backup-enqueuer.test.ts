import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { backupEnqueuer } from '../../src/jobs/producers.ts';
import type { BackupJobData } from '../../src/jobs/queues.ts';

/**
 * `/backup now` × 50 at once: one job, every answer naming it, and one add sent to Redis for the burst, not fifty
 * (a request that comes while an add for its target is on its way is answered with that add's job).
 */
let redis: Redis;
let queue: Queue<BackupJobData>;
/** Commands this connection sent, by name. */
const sent = new Map<string, number>();

beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  // Counted on the way out: ioredis's own sendCommand, wrapped, with nothing changed in what it sends.
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: { name: string }, stream?: unknown) => {
    sent.set(command.name, (sent.get(command.name) ?? 0) + 1);
    return send(command as never, stream as never);
  }) as typeof redis.sendCommand;
  queue = new Queue('backup', { connection: redis, prefix: `{t-enq-${randomUUID().slice(0, 8)}}` });
});
afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  await redis.quit();
});

const ask = (target: string, user: string): BackupJobData => ({
  target,
  kind: 'manual',
  label: null,
  requestedBy: { source: 'slack', userId: user, userName: user },
});
const evals = () => (sent.get('evalsha') ?? 0) + (sent.get('eval') ?? 0);

describe('backupEnqueuer', () => {
  it('answers fifty concurrent requests for a target with one job, made by one add', async () => {
    const enqueue = backupEnqueuer(queue);
    await queue.waitUntilReady();
    const before = evals();
    const answers = await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => enqueue(ask('shop', `U${i}`))),
      // Another target at the same moment gets its own job.
      enqueue(ask('billing', 'U99')),
    ]);
    const shop = answers.slice(0, 50);
    expect(new Set(shop.map((a) => a.jobId)).size).toBe(1);
    expect(shop.filter((a) => !a.duplicate)).toHaveLength(1);
    expect(answers[50]?.duplicate).toBe(false);
    expect(answers[50]?.jobId).not.toBe(shop[0]?.jobId);
    const jobs = await queue.getJobs(['waiting', 'active', 'delayed', 'prioritized']);
    expect(jobs.map((j) => j.data.target).sort()).toEqual(['billing', 'shop']);
    // Scripts run for the burst: the look-ups of running jobs (shared: requests during one wait for a fresh one)
    // and one add per target, about as few as for two lone requests (each a look-up and an add); without sharing
    // the add, fifty more.
    const burst = evals() - before;
    const lone = evals();
    await backupEnqueuer(queue)(ask('lone-1', 'U1'));
    await backupEnqueuer(queue)(ask('lone-2', 'U2'));
    expect(burst).toBeLessThanOrEqual(evals() - lone + 1);
    // The job is asked for by whoever's request made it.
    const made = jobs.find((j) => j.data.target === 'shop');
    expect(made?.data.requestedBy.userId).toBe(`U${shop.findIndex((a) => !a.duplicate)}`);

    // A request after the burst is answered by BullMQ's deduplication, with the same job.
    const later = await enqueue(ask('shop', 'U100'));
    expect(later).toEqual({ jobId: shop[0]?.jobId, duplicate: true });
  });
});
