import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { backupCommand } from '../../src/commands/backup-command.ts';
import { loadConfig } from '../../src/config.ts';
import type { ChecklistJob } from '../../src/jobs/checklist-data.ts';
import type { BackupJobData } from '../../src/jobs/queues.ts';
import { silentLog, tempStorage } from '../support/postgres-helpers.ts';

/** Real BullMQ queues on the test Redis and no worker: jobs stay queued, as a backup does while it runs. */
describe('/backup on real queues', () => {
  let redis: Redis;
  let queue: Queue<BackupJobData>;
  let checklist: Queue<ChecklistJob>;
  let cleanup: () => Promise<void>;
  let handle: ReturnType<typeof backupCommand>;
  const config = loadConfig({ DATABASE_URL: 'postgres://pgbb@127.0.0.1:1/shop', SLACK_CHANNEL: '#incidents' }, 'offline');
  const as = (text: string) => handle({ text, userId: 'U0ANA', userName: 'ana' });
  let root: string;

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    await redis.quit();
  });
  beforeEach(async () => {
    const prefix = `{cmd-${randomUUID().slice(0, 8)}}`;
    queue = new Queue<BackupJobData>('backup', { connection: redis, prefix });
    checklist = new Queue<ChecklistJob>('checklist', { connection: redis, prefix });
    const t = await tempStorage();
    root = t.root;
    cleanup = t.cleanup;
    handle = backupCommand({ config, queue, storage: t.storage, log: silentLog, checklist });
  });
  afterEach(async () => {
    await Promise.all([checklist, queue].map(async (q) => q.obliterate({ force: true }).then(() => q.close())));
    await cleanup();
  });

  it('/backup status opens with a production target whose every backup schedule is disabled', async () => {
    const shop = config.targets[0];
    if (!shop) throw new Error('no target');
    const off = { ...config, targets: [{ ...shop, policy: { ...shop.policy, backups: [] } }] };
    const t = await tempStorage();
    try {
      const reply = await backupCommand({ config: off, queue, storage: t.storage, log: silentLog, checklist })({
        text: 'status',
        userId: 'U0ANA',
        userName: 'ana',
      });
      expect(
        reply.text.startsWith(':warning: *shop* (production) has every backup schedule disabled in the config: nothing backs it up but `/backup now`'),
      ).toBe(true);
      expect((await as('status')).text).not.toContain('every backup schedule disabled');
      // A fleet of them is summed up, not left to cut the answer's end (its WAL streams) off.
      const many = {
        ...off,
        targets: Array.from({ length: 12 }, (_, i) => ({ ...shop, name: `app${i}`, policy: { ...shop.policy, name: `app${i}`, backups: [] } })),
      };
      const summed = await backupCommand({ config: many, queue, storage: t.storage, log: silentLog, checklist })({
        text: 'status',
        userId: 'U0ANA',
        userName: 'ana',
      });
      expect(summed.text.split('\n')[0]).toBe(
        `:warning: 12 production targets have every backup schedule disabled in the config (nothing backs them up but \`/backup now\`): ${many.targets.map((x) => x.name).join(', ')}`,
      );
    } finally {
      await t.cleanup();
    }
  });

  describe('pre-migration while a backup of the target is queued or running', () => {
    it('asked twice for the same migration, says the first one is on its way and starts nothing', async () => {
      const first = await as('pre-migration JIRA-1234');
      const jobId = /job `([^`]+)`/.exec(first.text)?.[1];
      const again = await as('pre-migration JIRA-1234');
      expect(again.text).toBe(
        `Pre-migration backup *JIRA-1234* of *shop* is already queued or running: job \`${jobId}\`. Nothing new was started; its restore test and the pre-migration checklist follow in #incidents.`,
      );
      expect(await queue.count()).toBe(1);
    });

    it('behind another backup, says which one and that this migration must ask again', async () => {
      await as('now');
      expect((await as('pre-migration JIRA-1234')).text).toMatch(
        /^A backup of \*shop\* is already queued or running \(job `backup-shop-[^`]+`\), so no pre-migration backup \*JIRA-1234\* was started\. Run `\/backup pre-migration JIRA-1234` again/,
      );
      await queue.obliterate({ force: true });
      await as('pre-migration JIRA-1');
      expect((await as('pre-migration JIRA-2')).text).toMatch(
        /^The pre-migration backup \*JIRA-1\* of \*shop\* is already queued or running .* no pre-migration backup \*JIRA-2\* was started/,
      );
      expect(await queue.count()).toBe(1);
    });
  });

  describe('now, while a scheduled backup of the target runs', () => {
    it('answers with the running job instead of queueing a second dump (schedules carry no deduplication id)', async () => {
      const job = await queue.add('scheduled-backup', {
        target: 'shop',
        kind: 'scheduled',
        label: null,
        requestedBy: { source: 'schedule', userName: 'schedule daily' },
        schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 },
      });
      // A worker that holds the job active, as a dump in progress does.
      let release = () => {};
      const gate = new Promise<void>((r) => (release = r));
      let started = () => {};
      const active = new Promise<void>((r) => (started = r));
      const worker = new Worker(
        queue.name,
        async () => {
          started();
          await gate;
        },
        { connection: redis.duplicate(), prefix: queue.opts.prefix ?? '' },
      );
      try {
        await active;
        const reply = await as('now');
        expect(reply.text).toBe(
          `A backup of *shop* is already queued or running: job \`${job.id}\`. Its result will be posted in #incidents; no second dump was started.`,
        );
        expect(await queue.getJobCounts('waiting', 'delayed')).toEqual({ waiting: 0, delayed: 0 });
      } finally {
        release();
        await worker.close();
      }
    });
  });

  describe('/backup checklist', () => {
    it('queues the checklist its reminder would post, once however often it is asked', async () => {
      const first = await as('checklist weekly');
      expect(first.text).toMatch(
        /^The weekly checklist is being prepared \(job `checklist-weekly-[^`]+`\): the bot runs its checks and posts it in #incidents\.$/,
      );
      const again = await as('checklist weekly');
      expect(again.text).toMatch(/^A weekly checklist is already being prepared: job `checklist-weekly-[^`]+`\. .*no second one was started\.$/);
      const jobs = await checklist.getJobs(['waiting']);
      // The same job data as the scheduler's template: the worker cannot tell the two apart.
      expect(jobs.map((j) => j.data)).toEqual([{ kind: 'weekly' }]);
      await as('checklist daily');
      expect((await checklist.getJobs(['waiting'])).map((j) => j.data.kind).sort()).toEqual(['daily', 'weekly']);
    });

    it('starts nothing for an unknown kind, and says what it takes', async () => {
      expect((await as('checklist hourly')).text).toMatch(/`\/backup checklist` takes `daily`, `weekly` or `monthly`\. Nothing was started\./);
      expect(await checklist.count()).toBe(0);
    });
  });

  it('/backup diff of an id with no backup says so, and that no backup of its target is stored', async () => {
    // The target has a directory (an empty BACKUP_DIR is said as such: test/cli/missing-backups.test.ts).
    await mkdir(join(root, 'shop'));
    const r = await as('diff shop-20261205T090000Z shop-20261205T100000Z');
    // Both are missing: whichever is read first is named.
    expect(r.text).toMatch(/There is no finished backup shop-20261205T(09|10)0000Z of shop\. No backup of shop is stored at all, nor of any other target\.$/);
  });
});
