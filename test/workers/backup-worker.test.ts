import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import type { BackupJobData } from '../../src/jobs/queues.ts';
import { checkTarget } from '../../src/health/collect.ts';
import { healthSources } from '../../src/health/sources.ts';
import { createEscalation } from '../../src/notifications/escalation.ts';
import { LocalStorage } from '../../src/storage/index.ts';
import { backupProcessor, type BackupWorkerDeps } from '../../src/workers/backup-worker.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { hookedStorage } from '../support/postgres-helpers.ts';
import { requestedBy, startWorkerKit, type WorkerKit } from './worker-kit.ts';
import { CLOSED_PORT } from '../support/closed-port.ts';
import { until } from '../support/until.ts';

/**
 * The backup processor's error paths, each as the on-call engineer meets it: the channel message's final text, the
 * page, the job's failedReason, and what is left in the backup directory.
 */

let kit: WorkerKit;
let source: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  source = await createTestDatabase(inject('pgUrl'), 'wbk');
  await runSql(source.url, 'CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 500) g;');
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), databaseUrl: source.url });
});

// Each test is an episode of its own: a page left open by the test before would make the next one "already paged".
beforeEach(async () => {
  await kit.forgetPages();
});

afterAll(async () => {
  await kit?.stop();
  await source?.drop();
});

const deps = (over: Partial<BackupWorkerDeps> = {}): BackupWorkerDeps => ({
  config: kit.config,
  storage: kit.storage,
  notifier: kit.notifier,
  escalation: kit.escalation,
  runs: kit.runs,
  log: kit.log,
  progressIntervalMs: 0,
  ...over,
});

const backupData = (over: Partial<BackupJobData> = {}): BackupJobData => ({ target: 'shop', kind: 'manual', label: null, requestedBy, ...over });

/** A config whose target `shop` points at a port where nothing listens. */
async function unreachableConfig(): Promise<Config> {
  const url = new URL(source.url);
  url.port = String(CLOSED_PORT);
  return { ...kit.config, targets: kit.config.targets.map((t) => ({ ...t, url: url.toString() })) };
}

/** Every file and directory under the target's backup directory (none when it does not exist). */
async function leftOnDisk(target = 'shop'): Promise<string[]> {
  return readdir(join(kit.backupDir, target), { recursive: true }).catch(() => []);
}

const pageFor = (condition: string, jobId: string) =>
  kit.pd.waitFor(
    (e) => e.event_action === 'trigger' && e.dedup_key === `pg-backup-bot/shop/${condition}` && JSON.stringify(e.payload?.custom_details).includes(jobId),
    30_000,
  );

describe('backupProcessor', () => {
  describe('when the database server is unreachable', () => {
    it('fails with the sentence, says it in the channel message, pages, records the failed run and leaves nothing on disk', async () => {
      const before = await leftOnDisk();
      const job = await kit.runJob(backupProcessor(deps({ config: await unreachableConfig() })), backupData(), { jobId: 'bk-unreachable' });
      expect(await job.getState()).toBe('failed');
      expect(job.failedReason).toMatch(/^Could not connect to the database server at .* \(connection refused\); check that PostgreSQL is running/);
      const m = kit.messageAbout('bk-unreachable');
      expect(m?.text).toBe(`Backup of shop FAILED: ${job.failedReason}`);
      expect(JSON.stringify(m?.blocks)).toMatch(/PagerDuty page queued \(error, dedup key pg-backup-bot\/shop\/backup\)/);
      const page = await pageFor('backup', 'bk-unreachable');
      expect(page.payload?.severity).toBe('error');
      expect(page.payload?.summary).toBe(`Backup of shop failed: ${job.failedReason}`);
      expect(await kit.runs.last('shop')).toMatchObject({ ok: false, jobId: 'bk-unreachable', reason: job.failedReason });
      expect(await leftOnDisk()).toEqual(before);
    });

    it('a pre-migration backup still hands its checklist on, saying the backup failed', async () => {
      const checklist = kit.queues.checklist;
      const job = await kit.runJob(
        backupProcessor(deps({ config: await unreachableConfig(), preMigration: { restoreTest: kit.queues.restoreTest, checklist } })),
        backupData({ kind: 'pre-migration', label: 'JIRA-7' }),
        { jobId: 'bk-premig-down' },
      );
      expect(await job.getState()).toBe('failed');
      const queued = await checklist.getJob('checklist-pre-migration-bk-premig-down');
      expect(queued?.data).toMatchObject({
        kind: 'pre-migration',
        target: 'shop',
        label: 'JIRA-7',
        backup: { ok: false, jobId: 'bk-premig-down', reason: job.failedReason },
        restoreTest: null,
      });
    });
  });

  describe('when Redis refuses the PagerDuty outbox as well', () => {
    it('the channel message says nobody could be paged', async () => {
      const dead = new Redis(inject('redisUrl'), { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      const escalation = createEscalation({ redis: dead, queue: kit.queues.pagerduty, prefix: kit.prefix, enabled: true, source: 'pg-backup-bot' });
      const job = await kit.runJob(backupProcessor(deps({ config: await unreachableConfig(), escalation })), backupData(), { jobId: 'bk-no-pager' });
      expect(job.failedReason).toMatch(/^Could not connect to the database server/);
      expect(JSON.stringify(kit.messageAbout('bk-no-pager')?.blocks)).toMatch(/PagerDuty could NOT be paged \(Redis error, see logs\)/);
      dead.disconnect();
    });
  });

  describe('when the backup disk fills up during the dump', () => {
    it('fails with "the backup disk is full", pages, and removes the half-written backup', async () => {
      const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
      const before = await leftOnDisk();
      const job = await kit.runJob(backupProcessor(deps({ storage: hookedStorage(kit.storage, { failWith: enospc }) })), backupData(), {
        jobId: 'bk-disk-full',
      });
      expect(job.failedReason).toMatch(/^The backup disk is full \(local:.*\); free space or delete old backups, then run the backup again\.$/);
      expect(kit.messageAbout('bk-disk-full')?.text).toBe(`Backup of shop FAILED: ${job.failedReason}`);
      expect((await pageFor('backup', 'bk-disk-full')).payload?.summary).toBe(`Backup of shop failed: ${job.failedReason}`);
      expect(await leftOnDisk()).toEqual(before);
      // The half backup is gone and the disk looks roomy again: health must still say it ran out of space.
      const { results } = await checkTarget(healthSources(kit.config, { storage: kit.storage, runs: kit.runs, backupQueue: null }), 'shop', new Date());
      expect(results.find((r) => r.condition === 'disk')).toMatchObject({
        status: 'failing',
        summary: expect.stringMatching(/^Backup disk of shop is short of space: the last backup ran out of space at .* and none has succeeded since$/),
      });
    });
  });

  describe('while it dumps', () => {
    it('behind a lock, the channel message says on which table and who holds it, then goes on once it is released', async () => {
      const locker = new pg.Client({ connectionString: source.url, application_name: 'migrate-7' });
      await locker.connect();
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
        const running = kit.runJob(backupProcessor(deps({ lockWatchMs: 200 })), backupData(), { jobId: 'bk-lock-wait' });
        const versions = () => {
          const m = kit.messageAbout('bk-lock-wait');
          return [...(m?.history ?? []), ...(m ? [m] : [])].map((v) => JSON.stringify(v.blocks ?? ''));
        };
        const deadline = Date.now() + 30_000;
        while (!versions().some((v) => v.includes('waiting')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        const said = versions().find((v) => v.includes('waiting')) ?? '';
        expect(said).toMatch(
          /running — (counting|dumping), waiting [\d.]+ s for a lock on public\.orders, held by pid \d+ \(user \w+, migrate-7, idle in transaction for [\d.]+ s: LOCK TABLE …\)/,
        );
        expect(said).not.toMatch(/left/);
        await locker.query('COMMIT');
        const job = await running;
        expect(await job.getState()).toBe('completed');
        expect(kit.messageAbout('bk-lock-wait')?.text).toMatch(/^Backup of shop succeeded: /);
      } finally {
        await locker.end();
      }
    });

    it('the channel message says what was read of a total (the last backup, or the tables on disk) before the verdict', async () => {
      const job = await kit.runJob(backupProcessor(deps()), backupData(), { jobId: 'bk-progress' });
      expect(await job.getState()).toBe('completed');
      const m = [...kit.slack.messages.values()].find((x) => !x.thread_ts && JSON.stringify(x.blocks ?? '').includes('bk-progress'));
      const versions = [...(m?.history ?? []), ...(m ? [m] : [])].map((v) => JSON.stringify(v.blocks ?? ''));
      expect(versions.some((v) => /running — dumping, \d[\d.]* (B|KB|MB) of ~\d[\d.]* (B|KB|MB)( of tables on disk)? read \(\d+ %\)/.test(v))).toBe(true);
      expect(m?.text).toMatch(/^Backup of shop succeeded: /);
    });
  });

  describe('when the job names a target the config does not have', () => {
    it('fails with a sentence naming it, said and paged for that target', async () => {
      const job = await kit.runJob(backupProcessor(deps()), backupData({ target: 'billing' }), { jobId: 'bk-no-target' });
      expect(job.failedReason).toMatch(/billing/);
      expect(kit.messageAbout('bk-no-target')?.text).toBe(`Backup of billing FAILED: ${job.failedReason}`);
      await kit.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/billing/backup', 30_000);
      expect(await leftOnDisk('billing')).toEqual([]);
    });
  });

  describe('when the off-site copy fails', () => {
    it('the backup stands; the thread says the copy failed and the copy condition pages a warning', async () => {
      // A copy storage whose root lies under a file: every write there fails (ENOTDIR), as a broken mount would.
      const blocker = join(kit.backupDir, 'not-a-directory');
      await writeFile(blocker, '');
      const copy = new LocalStorage(join(blocker, 'copies'), kit.log);
      const job = await kit.runJob(backupProcessor(deps({ copies: [copy] })), backupData(), { jobId: 'bk-copy-fails' });
      expect(await job.getState()).toBe('completed');
      const { backupId } = job.returnvalue as { backupId: string };
      expect((await kit.storage.list('shop')).map((m) => m.backupId)).toContain(backupId);
      const m = kit.messageAbout('bk-copy-fails');
      expect(m?.text).toMatch(/^Backup of shop succeeded: /);
      const thread = kit.thread(m as NonNullable<typeof m>).map((r) => r.text ?? '');
      expect(thread.join('\n')).toMatch(new RegExp(`:warning: copy to local:${blocker}/copies failed: `));
      const page = await kit.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/offsite-copy', 30_000);
      expect(page.payload?.severity).toBe('warning');
      expect(page.payload?.summary).toMatch(new RegExp(`^Off-site copy of ${backupId} failed: `));
    });
  });

  describe('when an off-site copy was missed', () => {
    it('the next backup copies the missed one too; the page stays open until every backup is off-site, then resolves (QA)', async () => {
      // A primary of its own, so the backups of this test are all there are; a copy that fails, then works again.
      const primary = new LocalStorage(join(kit.backupDir, 'catch-up-primary'), kit.log);
      const root = join(kit.backupDir, 'catch-up-copy');
      await writeFile(root, '');
      const copy = new LocalStorage(join(root, 'copies'), kit.log);
      const run = (jobId: string) => kit.runJob(backupProcessor(deps({ storage: primary, copies: [copy] })), backupData(), { jobId });
      const key = 'pg-backup-bot/shop/offsite-copy';
      const seen = kit.pd.events.filter((e) => e.dedup_key === key).length;
      const missed = ((await run('bk-copy-missed')).returnvalue as { backupId: string }).backupId;
      await until('the copy paged', () =>
        kit.pd.events
          .filter((e) => e.dedup_key === key)
          .slice(seen)
          .find((e) => e.event_action === 'trigger'),
      );
      await rm(root);
      const next = ((await run('bk-copy-catches-up')).returnvalue as { backupId: string }).backupId;
      const m = kit.messageAbout('bk-copy-catches-up');
      const thread = kit
        .thread(m as NonNullable<typeof m>)
        .map((r) => r.text ?? '')
        .join('\n');
      expect(thread).toContain(`:white_check_mark: copied to local:${root}/copies`);
      expect(thread).toContain(`:white_check_mark: also copied ${missed} to local:${root}/copies, which an earlier copy missed`);
      expect((await copy.list('shop')).map((b) => b.backupId).sort()).toEqual([missed, next].sort());
      await until('the page resolved', () =>
        kit.pd.events
          .filter((e) => e.dedup_key === key)
          .slice(seen)
          .find((e) => e.event_action === 'resolve'),
      );
    });
  });

  describe('when Slack answers errors', () => {
    it('a refused update of the message posts the verdict as a message of its own, details threaded under it; the backup stands', async () => {
      kit.slack.rateLimitNext(1000, 1, 'chat.update');
      try {
        const job = await kit.runJob(backupProcessor(deps()), backupData(), { jobId: 'bk-slack-update' });
        expect(await job.getState()).toBe('completed');
        const about = [...kit.slack.messages.values()].filter((m) => !m.thread_ts && JSON.stringify(m.blocks ?? '').includes('bk-slack-update'));
        // The opening post stays as it was posted (every edit was refused); the verdict is the newest message.
        expect(about.map((m) => m.text)).toEqual([
          expect.stringMatching(/^Backup of shop running \(job bk-slack-update\)$/),
          expect.stringMatching(/^Backup of shop succeeded: /),
        ]);
        expect(about[0]?.updates).toBe(0);
        const verdict = about[1] as NonNullable<(typeof about)[1]>;
        expect(kit.thread(verdict).some((r) => /orders/.test(JSON.stringify(r.blocks ?? r.text)))).toBe(true);
      } finally {
        kit.slack.rateLimitNext(0);
      }
    });

    it('with the channel gone (channel_not_found on every post) the backup still runs to its manifest', async () => {
      const job = await kit.runJob(backupProcessor(deps({ notifier: kit.notifierFor('#deleted') })), backupData(), { jobId: 'bk-no-channel' });
      expect(await job.getState()).toBe('completed');
      const { backupId } = job.returnvalue as { backupId: string };
      expect(await kit.storage.readManifest('shop', backupId)).toMatchObject({ backupId, jobId: 'bk-no-channel' });
      // The opening post and the verdict were both refused; nothing else was tried.
      expect(kit.slack.calls.filter((c) => c.body.channel === '#deleted').map((c) => c.response.error)).toEqual(['channel_not_found', 'channel_not_found']);
    });
  });

  describe('when Redis loses the job mid-dump (restarted empty)', () => {
    it('the dump goes on to its manifest and the verdict, and no progress write escapes as an unhandled rejection', async () => {
      const queue = new Queue<BackupJobData>(`lost-${Date.now()}`, { connection: kit.redis, prefix: kit.prefix });
      const job = await (queue as unknown as Queue).add('backup', backupData(), { jobId: 'bk-redis-lost' });
      const storage = hookedStorage(kit.storage, {
        beforeDump: async () => {
          await kit.redis.del(`${kit.prefix}:${queue.name}:bk-redis-lost`);
        },
      });
      const result = await backupProcessor(deps({ storage }))(job as never);
      expect(await kit.redis.exists(`${kit.prefix}:${queue.name}:bk-redis-lost`)).toBe(0);
      expect(await kit.storage.readManifest('shop', result.backupId)).toMatchObject({ jobId: 'bk-redis-lost' });
      expect(kit.messageAbout('bk-redis-lost')?.text).toMatch(new RegExp(`^Backup of shop succeeded: ${result.backupId}`));
      await queue.close();
    });
  });
});
