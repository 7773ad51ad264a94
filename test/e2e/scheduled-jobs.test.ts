import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, Queue, UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RestoreTestJobData } from '../../src/jobs/queues.ts';
import { syncSchedulers } from '../../src/schedules/sync.ts';
import { restoreTestProcessor } from '../../src/workers/restore-test-worker.ts';
import { channelMessage, slash, startHarness, type Harness } from './harness.ts';

/**
 * Jobs as the job schedulers make them: the schedulers are synced into the harness's Redis from its config, and
 * their pending jobs promoted so the running workers take them now rather than at 02:00.
 */

let h: Harness;
let configFile: string;
let scratch: Queue;
const DAY = 24 * 3600 * 1000;

async function pendingJob(queue: Queue, schedulerId: string): Promise<Job> {
  const job = (await queue.getDelayed()).find((j) => j.repeatJobKey === schedulerId);
  if (!job) throw new Error(`no pending job of ${schedulerId}`);
  return job;
}

/** A restore-test job as the scheduler makes it, scheduled for `at`, in a queue no worker reads. */
function scheduledRestoreTest(target: string, at: Date): Promise<Job<RestoreTestJobData>> {
  const data: RestoreTestJobData = { target, requestedBy: { source: 'schedule', userName: 'schedule restore-test' }, schedule: { rule: 'first-saturday' } };
  return Job.create(scratch as Queue<RestoreTestJobData>, 'scheduled-restore-test', data, { prevMillis: at.getTime() });
}

function expectKept(m: { retainUntil: string | null; startedAt: string } | undefined, days: number) {
  expect(new Date(m?.retainUntil ?? 0).getTime() - new Date(m?.startedAt ?? 0).getTime()).toBe(days * DAY);
}

const processor = () => {
  const d = h.service.deps;
  return restoreTestProcessor({ config: d.config, storage: d.storage, notifier: d.notifier, escalation: d.escalation, log: d.log });
};

beforeAll(async () => {
  configFile = join(tmpdir(), `pgbb-sched-${process.pid}-${Date.now()}.yml`);
  await writeFile(configFile, 'timezone: Europe/Paris\n');
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { BOT_CONFIG: configFile } });
  await syncSchedulers(h.service.deps.queues, h.config, h.service.deps.log);
  scratch = new Queue(`test-${randomUUID()}`, { connection: h.service.deps.workerRedis, prefix: h.config.queuePrefix });
});

afterAll(async () => {
  await scratch?.close();
  await h?.stop();
  await rm(configFile, { force: true });
});

describe('scheduled backups', () => {
  it('run in their schedule’s retention class, keep its days, say which schedule made them, and line up the next run', async () => {
    const queue = h.service.deps.queues.backup as unknown as Queue;
    const job = await pendingJob(queue, 'pgbb:backup:shop:frequent');
    await job.promote();
    const msg = await channelMessage(h, job.id ?? '', /succeeded/);
    expect(JSON.stringify(msg.blocks)).toContain('scheduled by `frequent` (frequent, kept 7 days)');
    expect(JSON.stringify(msg.blocks)).toContain('requested by the schedule');

    const m = (await h.service.deps.storage.list('shop')).find((b) => b.jobId === job.id);
    expect(m).toMatchObject({ kind: 'scheduled', retentionClass: 'frequent', requestedBy: { source: 'schedule' } });
    expectKept(m, 7);

    // Taking the job made the scheduler queue its next run, six hours on.
    const next = await pendingJob(queue, 'pgbb:backup:shop:frequent');
    expect(next.opts.prevMillis).toBe((job.opts.prevMillis ?? 0) + 6 * 3600_000);
  }, 120_000);

  it('take the daily class and its 30 days', async () => {
    const queue = h.service.deps.queues.backup as unknown as Queue;
    const job = await pendingJob(queue, 'pgbb:backup:shop:daily');
    await job.promote();
    await channelMessage(h, job.id ?? '', /succeeded/);
    const m = (await h.service.deps.storage.list('shop')).find((b) => b.jobId === job.id);
    expect(m?.retentionClass).toBe('daily');
    expectKept(m, 30);
  }, 120_000);
});

describe('scheduled restore tests', () => {
  it('on the first Saturday, test the newest backup, chosen when the job runs', async () => {
    const [newest] = await h.service.deps.storage.list('shop');
    if (!newest) throw new Error('no backup yet');
    const queue = h.service.deps.queues.restoreTest as unknown as Queue<RestoreTestJobData>;
    const job = await pendingJob(queue, 'pgbb:restore-test:shop');
    expect(job.data.backupId).toBeUndefined();
    await job.promote();
    const msg = await channelMessage(h, job.id ?? '', /passed/, 120_000);
    expect(msg.text).toContain(newest.backupId);
    expect((await queue.getJob(job.id ?? ''))?.data.backupId).toBe(newest.backupId);
    const [record] = await h.service.deps.storage.listRecords('restore-test', 'shop');
    expect(record).toMatchObject({ backupId: newest.backupId, passed: true, requestedBy: { source: 'schedule' } });
  }, 180_000);

  it('do nothing on another day: a log line and a completed result, no message, no record', async () => {
    const records = (await h.service.deps.storage.listRecords('restore-test', 'shop')).length;
    const posts = h.slack.messages.size;
    // Saturday 2026-12-12 is the second Saturday of December.
    const job = await scheduledRestoreTest('shop', new Date('2026-12-12T02:00:00Z'));
    const result = await processor()(job);
    expect(result).toEqual({ skipped: expect.stringMatching(/Sat 2026-12-12 03:00 UTC\+01:00 is not the first Saturday/) });
    expect(h.slack.messages.size).toBe(posts);
    expect((await h.service.deps.storage.listRecords('restore-test', 'shop')).length).toBe(records);
    expect(h.logs.join('')).toMatch(/scheduled restore test skipped/);
  });

  it('with no backup to test, say so in the channel and page like any restore test that could not run', async () => {
    const config = { ...h.config, targets: [...h.config.targets, { ...h.config.targets[0], name: 'empty' } as (typeof h.config.targets)[number]] };
    const d = h.service.deps;
    const run = restoreTestProcessor({ config, storage: d.storage, notifier: d.notifier, escalation: d.escalation, log: d.log });
    const job = await scheduledRestoreTest('empty', new Date('2026-12-05T02:00:00Z'));
    await expect(run(job)).rejects.toBeInstanceOf(UnrecoverableError);
    const msg = await channelMessage(h, job.id ?? '', /could not run/);
    expect(msg.text).toMatch(/no finished backup of empty/);
    const page = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/empty/restore-test', 30_000);
    expect(page.payload?.severity).toBe('critical');
  });
});

describe('/backup status', () => {
  it('lists each target’s schedules with their next run in the configured zone, beside the jobs', async () => {
    const { text } = await slash(h, '/backup', 'status');
    expect(text).toMatch(/\*Running\* \(\d+\)/);
    expect(text).toContain('Schedules (times in Europe/Paris):');
    expect(text).toMatch(/\*shop\*\n• daily backup \(daily, kept 30 days\): every day at 02:00 — next \w{3} \d{4}-\d\d-\d\d 02:00 UTC\+0[12]:00/);
    expect(text).toMatch(/• frequent backup \(frequent, kept 7 days\): every 6 hours at :00/);
    expect(text).toMatch(/• restore test of the newest backup \(monthly\): first Saturday of the month at 03:00 — next Sat /);
    expect(text).toMatch(/\*All targets\*\n• retention/);
    // The schedulers' own pending jobs are schedules, not waiting work.
    expect(text).toMatch(/\*Waiting\* \(0\)/);
  });
});
