import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { z } from 'zod';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { BackupJobData, createQueues, RestoreTestJobData, type Queues } from '../../src/jobs/queues.ts';
import { createLogger } from '../../src/logger.ts';
import {
  ChecklistJobData,
  RetentionJobData,
  ScheduleConfigSchema,
  nextRuns,
  plannedSchedulers,
  resolvePolicy,
  syncSchedulers,
  type ScheduleSource,
} from '../../src/schedules/index.ts';

const log = createLogger({ level: 'silent' });

/** The parts of Config that syncSchedulers reads, from the YAML shape (defaults applied by the schema). */
function source(input: Record<string, unknown>): ScheduleSource {
  const c = ScheduleConfigSchema.parse(input);
  return { targets: c.targets.map((t) => ({ policy: resolvePolicy(t) })), timezone: c.timezone, schedules: { retention: c.retention, reminders: c.reminders } };
}

const SHOP = { name: 'shop', url: 'postgres://backup@db.internal/shop', environment: 'production' };
const STAGING = { name: 'shop-staging', urlEnv: 'STAGING_URL', environment: 'staging' };
const BASE = { timezone: 'Europe/Paris', targets: [SHOP, STAGING] };

/** What "another bot process" has: its own Redis connection and its own Queue objects, same prefix. */
const opened: Array<{ redis: Redis; queues: Queues }> = [];
function bot(prefix: string): Queues {
  const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  const queues = createQueues(redis, prefix);
  opened.push({ redis, queues });
  return queues;
}
afterEach(async () => {
  for (const { redis, queues } of opened.splice(0)) {
    await queues.close();
    await redis.quit();
  }
});

const schedulerQueues = (q: Queues) => [q.backup, q.restoreTest, q.retention, q.checklist];

async function stored(q: Queues) {
  const all = await Promise.all(schedulerQueues(q).map(async (queue) => (await queue.getJobSchedulers()).map((s) => ({ ...s, queue: queue.name }))));
  return all.flat().sort((a, b) => a.key.localeCompare(b.key));
}

/** Pending (delayed) jobs per scheduler id. */
async function pending(q: Queues): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const queue of schedulerQueues(q)) {
    for (const j of await queue.getDelayed()) {
      const key = j.repeatJobKey ?? String(j.id);
      out[key] = (out[key] ?? 0) + 1;
    }
  }
  return out;
}

describe('syncSchedulers (real Redis)', () => {
  it('leaves exactly one scheduler per schedule, with its pattern, zone and data, when several processes sync at once', async () => {
    const prefix = `{sync-${randomUUID().slice(0, 8)}}`;
    const config = source(BASE);
    const processes = Array.from({ length: 5 }, () => bot(prefix));
    await Promise.all(processes.map((q) => syncSchedulers(q, config, log)));

    const plan = plannedSchedulers(config);
    const q = processes[0] as Queues;
    const got = await stored(q);
    expect(got.map((s) => s.key)).toEqual(plan.map((p) => p.id).sort());
    const now = new Date();
    for (const p of plan) {
      const s = got.find((x) => x.key === p.id);
      expect(s?.queue, p.id).toBe(p.queue);
      expect(s?.pattern, p.id).toBe(p.pattern);
      expect(s?.tz, p.id).toBe('Europe/Paris');
      expect(s?.name, p.id).toBe(p.name);
      expect(s?.template?.data, p.id).toEqual(p.data);
      // Without a day rule, BullMQ's next run is the one /backup status shows.
      if (!p.rule) expect(s?.next, p.id).toBe(nextRuns(p, now, 1)[0]?.getTime());
    }
    // One pending job each, never two.
    expect(await pending(q)).toEqual(Object.fromEntries(plan.map((p) => [p.id, 1])));
  });

  it('produces jobs that the workers’ job data schemas accept', async () => {
    const q = bot(`{sync-${randomUUID().slice(0, 8)}}`);
    await syncSchedulers(q, source(BASE), log);
    const pairs: Array<[Queue, z.ZodType]> = [
      [q.backup as unknown as Queue, BackupJobData],
      [q.restoreTest as unknown as Queue, RestoreTestJobData],
      [q.retention as unknown as Queue, RetentionJobData],
      [q.checklist as unknown as Queue, ChecklistJobData],
    ];
    for (const [queue, schema] of pairs) {
      const jobs = await queue.getDelayed();
      expect(jobs.length).toBeGreaterThan(0);
      for (const j of jobs) {
        const parsed = schema.safeParse(j.data);
        expect(parsed.success, `${queue.name} ${j.id}: ${parsed.error?.message}`).toBe(true);
      }
    }
    const daily = (await q.backup.getDelayed()).find((j) => j.repeatJobKey === 'pgbb:backup:shop:daily');
    expect(daily?.data).toMatchObject({
      target: 'shop',
      kind: 'scheduled',
      requestedBy: { source: 'schedule' },
      schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 },
    });
    const rt = (await q.restoreTest.getDelayed())[0];
    expect(rt?.data.backupId).toBeUndefined();
    expect(rt?.data.schedule).toEqual({ rule: expect.stringMatching(/first-saturday/) });
  });

  it('removes what left the config (a disabled schedule, a removed target, reminders off) and keeps schedulers that are not ours', async () => {
    const prefix = `{sync-${randomUUID().slice(0, 8)}}`;
    const q = bot(prefix);
    // Foreign schedulers, as the health job's: BullMQ typing aside, any data will do.
    await (q.backup as unknown as Queue).upsertJobScheduler('health', { every: 60_000 }, { name: 'health', data: {} });
    await (q.checklist as unknown as Queue).upsertJobScheduler('someone-elses', { pattern: '0 8 * * *' }, { name: 'x', data: {} });
    await syncSchedulers(q, source(BASE), log);
    expect((await stored(q)).map((s) => s.key)).toContain('pgbb:backup:shop-staging:weekly');

    const later = bot(prefix); // the next start, with the edited file
    const result = await syncSchedulers(
      later,
      source({
        timezone: 'Europe/Paris',
        targets: [{ ...SHOP, schedules: { backups: { frequent: { enabled: false } } } }],
        reminders: { weekly: { enabled: false } },
      }),
      log,
    );
    expect(result.removed.sort()).toEqual([
      'pgbb:backup:shop-staging:weekly',
      'pgbb:backup:shop:frequent',
      'pgbb:checklist:weekly',
      'pgbb:restore-test:shop-staging',
    ]);
    const keys = (await stored(later)).map((s) => s.key);
    expect(keys).toEqual([
      'health',
      'pgbb:backup:shop:daily',
      'pgbb:checklist:daily',
      'pgbb:checklist:monthly',
      'pgbb:restore-test:shop',
      'pgbb:retention',
      'someone-elses',
    ]);
    // Their pending jobs went with them.
    const left = await pending(later);
    expect(left['pgbb:backup:shop:frequent']).toBeUndefined();
    expect(left['pgbb:backup:shop-staging:weekly']).toBeUndefined();
    expect(left['someone-elses']).toBe(1);
  });

  it('updates a changed cron or time zone, and its pending job with it', async () => {
    const prefix = `{sync-${randomUUID().slice(0, 8)}}`;
    const q = bot(prefix);
    await syncSchedulers(q, source(BASE), log);
    const changed = source({ timezone: 'America/New_York', targets: [{ ...SHOP, schedules: { backups: { daily: { cron: '30 1 * * *', keepDays: 40 } } } }] });
    const result = await syncSchedulers(bot(prefix), changed, log);
    expect(result.upserted).toContain('pgbb:backup:shop:daily');

    const s = await q.backup.getJobScheduler('pgbb:backup:shop:daily');
    expect(s).toMatchObject({ pattern: '30 1 * * *', tz: 'America/New_York', template: { data: { schedule: { id: 'daily', keepDays: 40 } } } });
    const plan = plannedSchedulers(changed).find((p) => p.id === 'pgbb:backup:shop:daily');
    if (!plan) throw new Error('no plan');
    expect(s?.next).toBe(nextRuns(plan, new Date(), 1)[0]?.getTime());
    const jobs = (await q.backup.getDelayed()).filter((j) => j.repeatJobKey === 'pgbb:backup:shop:daily');
    expect(jobs).toHaveLength(1);
    expect((jobs[0]?.opts as { repeat?: unknown } | undefined)?.repeat).toMatchObject({ pattern: '30 1 * * *', tz: 'America/New_York' });
    expect(jobs[0]?.data.schedule?.keepDays).toBe(40);
  });

  it('leaves unchanged schedulers alone, so a run that came due while the bot was down survives the restart', async () => {
    const prefix = `{sync-${randomUUID().slice(0, 8)}}`;
    const q = bot(prefix);
    const config = source(BASE);
    await syncSchedulers(q, config, log);
    const job = (await q.backup.getDelayed()).find((j) => j.repeatJobKey === 'pgbb:backup:shop:daily');
    if (!job) throw new Error('no pending job');
    // As if 02:00 passed with no worker running: the job is due now.
    await job.changeDelay(0);

    const result = await syncSchedulers(bot(prefix), config, log);
    expect(result.upserted).toEqual([]);
    expect(result.removed).toEqual([]);
    expect(result.unchanged).toHaveLength(plannedSchedulers(config).length);
    const after = await q.backup.getJob(job.id ?? '');
    expect(after?.delay).toBe(0);
    expect(after?.timestamp).toBe(job.timestamp);
  });
});
