import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  ChecklistJobData,
  RetentionJobData,
  ScheduleConfigSchema,
  ScheduledBackupData,
  ScheduledBaseBackupData,
  ScheduledRestoreTestData,
  diffSchedulers,
  formatScheduleStatus,
  nextRuns,
  planSchedulers,
  resolvePolicy,
  scheduleStatus,
  upsertArgs,
  type PlannedScheduler,
} from '../../src/schedules/index.ts';

function planFor(input: unknown): PlannedScheduler[] {
  const config = ScheduleConfigSchema.parse(input);
  return planSchedulers(config, config.targets.map(resolvePolicy));
}

const BASE = {
  timezone: 'Europe/Paris',
  targets: [
    { name: 'shop', url: 'postgres://backup:hunter2@db.internal/shop', environment: 'production' },
    { name: 'shop-staging', urlEnv: 'STAGING_URL', environment: 'staging' },
  ],
};

describe('planSchedulers', () => {
  it('plans every default with stable ids, patterns in the configured zone and the job names workers expect', () => {
    const plan = planFor(BASE);
    expect(plan.map((p) => [p.id, p.queue, p.name, p.pattern])).toEqual([
      ['pgbb:backup:shop:daily', 'backup', 'scheduled-backup', '0 2 * * *'],
      ['pgbb:backup:shop:frequent', 'backup', 'scheduled-backup', '0 */6 * * *'],
      ['pgbb:restore-test:shop', 'restore-test', 'scheduled-restore-test', '0 3 * * 6#1'],
      ['pgbb:backup:shop-staging:weekly', 'backup', 'scheduled-backup', '0 2 * * 0'],
      ['pgbb:restore-test:shop-staging', 'restore-test', 'scheduled-restore-test', '0 3 * 1,4,7,10 6#1'],
      ['pgbb:retention', 'retention', 'retention', '0 5 * * *'],
      ['pgbb:checklist:daily', 'checklist', 'checklist', '0 9 * * *'],
      ['pgbb:checklist:weekly', 'checklist', 'checklist', '0 9 * * 1'],
      ['pgbb:checklist:monthly', 'checklist', 'checklist', '0 9 * * 1#2'],
    ]);
    expect(new Set(plan.map((p) => p.tz))).toEqual(new Set(['Europe/Paris']));
  });

  it('puts names and policy in job data, valid for the workers’ schemas, and never a URL', () => {
    const plan = planFor(BASE);
    const daily = plan.find((p) => p.id === 'pgbb:backup:shop:daily');
    expect(daily?.data).toEqual({
      target: 'shop',
      kind: 'scheduled',
      label: null,
      requestedBy: { source: 'schedule', userName: 'schedule daily' },
      schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 },
    });
    const schema = {
      backup: ScheduledBackupData,
      'restore-test': ScheduledRestoreTestData,
      retention: RetentionJobData,
      checklist: ChecklistJobData,
      'base-backup': ScheduledBaseBackupData,
    };
    for (const p of plan) expect(schema[p.queue].safeParse(p.data).success, p.id).toBe(true);
    expect(JSON.stringify(plan)).not.toMatch(/hunter2|postgres:\/\//);
    expect(plan.find((p) => p.queue === 'restore-test')?.rule).toBe('first-saturday');
  });

  it('is deterministic, and drops disabled schedules, reminders and retention', () => {
    expect(planFor(BASE)).toEqual(planFor(BASE));
    const plan = planFor({
      ...BASE,
      targets: [{ ...BASE.targets[0], schedules: { backups: { frequent: { enabled: false } }, restoreTest: { enabled: false } } }],
      retention: { enabled: false },
      reminders: { weekly: { enabled: false }, monthly: { at: '10:15' } },
    });
    expect(plan.map((p) => p.id)).toEqual(['pgbb:backup:shop:daily', 'pgbb:checklist:daily', 'pgbb:checklist:monthly']);
    expect(plan.at(-1)?.pattern).toBe('15 10 * * 1#2');
  });

  it('lists each schedule with its next run in the configured zone for /backup status', () => {
    const text = formatScheduleStatus(scheduleStatus(planFor(BASE), new Date('2026-11-25T00:30:00Z')), 'Europe/Paris');
    expect(text).toContain('Schedules (times in Europe/Paris):');
    expect(text).toContain('*shop*\n• daily backup (daily, kept 30 days): every day at 02:00 — next Wed 2026-11-25 02:00 UTC+01:00');
    expect(text).toContain('• restore test of the newest backup (monthly): first Saturday of the month at 03:00 — next Sat 2026-12-05 03:00 UTC+01:00');
    expect(text).toContain('*shop-staging*');
    expect(text.indexOf('*All targets*')).toBeGreaterThan(text.indexOf('*shop-staging*'));
    expect(formatScheduleStatus([], 'UTC')).toBe('No schedules configured (times in UTC).');
  });
});

describe('diffSchedulers', () => {
  it('removes only our own ids that are no longer wanted', () => {
    const wanted = planFor(BASE).filter((p) => p.queue === 'backup');
    const existing = ['pgbb:backup:shop:daily', 'pgbb:backup:shop:hourly', 'pgbb:backup:gone:daily', 'health', 'someone-else:backup', 'pgbb:backup:shop:daily'];
    const diff = diffSchedulers(wanted, existing);
    expect(diff.upsert).toEqual(wanted);
    expect(diff.remove).toEqual(['pgbb:backup:gone:daily', 'pgbb:backup:shop:hourly']);
    expect(
      diffSchedulers(
        wanted,
        wanted.map((w) => w.id),
      ).remove,
    ).toEqual([]);
  });
});

describe('planned schedulers in BullMQ (real Redis)', () => {
  let redis: Redis;
  let queue: Queue;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    queue = new Queue('backup', { connection: redis, prefix: `{sched-${randomUUID()}}` });
  });
  afterAll(async () => {
    await queue.close();
    await redis.quit();
  });

  async function apply(plan: PlannedScheduler[]): Promise<string[]> {
    const existing = (await queue.getJobSchedulers()).map((s) => s.key);
    const { upsert, remove } = diffSchedulers(
      plan.filter((p) => p.queue === 'backup' || p.queue === 'restore-test'),
      existing,
    );
    for (const p of upsert) await queue.upsertJobScheduler(...upsertArgs(p));
    for (const id of remove) await queue.removeJobScheduler(id);
    return (await queue.getJobSchedulers()).map((s) => s.key).sort();
  }

  it('upserts idempotently, removes what left the config, leaves foreign schedulers alone, agrees on next runs', async () => {
    await queue.upsertJobScheduler('health', { every: 60_000 }, { name: 'health', data: {} });
    const plan = planFor(BASE);
    const first = await apply(plan);
    const delayedBefore = (await queue.getDelayed()).map((j) => j.id).sort();
    expect(await apply(plan)).toEqual(first);
    expect((await queue.getDelayed()).map((j) => j.id).sort()).toEqual(delayedBefore);
    expect(first).toContain('pgbb:restore-test:shop');

    const now = new Date();
    for (const s of await queue.getJobSchedulers()) {
      const p = plan.find((x) => x.id === s.key);
      if (p) expect(s.next, p.id).toBe(nextRuns(p, now, 1)[0]?.getTime());
    }

    const smaller = planFor({ ...BASE, targets: [{ ...BASE.targets[0], schedules: { backups: { frequent: { enabled: false } } } }] });
    expect(await apply(smaller)).toEqual(['health', 'pgbb:backup:shop:daily', 'pgbb:restore-test:shop']);
  });
});
