import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import type { RestoreTestJobData } from '../../src/jobs/queues.ts';
import { runBackup } from '../../src/postgres/backup/index.ts';
import type { Manifest } from '../../src/storage/index.ts';
import { restoreTestProcessor, type RestoreTestWorkerDeps } from '../../src/workers/restore-test-worker.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { backupOptions } from '../support/postgres-helpers.ts';
import { requestedBy, startWorkerKit, type WorkerKit } from './worker-kit.ts';
import { CLOSED_PORT } from '../support/closed-port.ts';

/**
 * The restore-test processor's error paths as the on-call engineer meets them: a test that could not run (nothing to
 * test, backup gone, scratch server down) and a test that ran and failed (a corrupted artifact), each with its channel
 * message, its critical page, its failedReason, the record kept beside the backups, and a pre-migration checklist.
 */

let kit: WorkerKit;
let source: Awaited<ReturnType<typeof createTestDatabase>>;
/** A real backup of the test database, restorable. */
let good: Manifest;

beforeAll(async () => {
  source = await createTestDatabase(inject('pgUrl'), 'wrt');
  await runSql(source.url, 'CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100);');
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), databaseUrl: source.url });
  const target = kit.config.targets[0];
  if (!target) throw new Error('the kit has no target');
  good = await runBackup(backupOptions(source.url, kit.storage, { target, backupId: 'shop-20261201T020000Z' }));
});

beforeEach(async () => {
  await kit.forgetPages();
});

afterAll(async () => {
  await kit?.stop();
  await source?.drop();
});

const deps = (over: Partial<RestoreTestWorkerDeps> = {}): RestoreTestWorkerDeps => ({
  config: kit.config,
  storage: kit.storage,
  notifier: kit.notifier,
  escalation: kit.escalation,
  checklist: kit.queues.checklist,
  log: kit.log,
  ...over,
});

const testData = (over: Partial<RestoreTestJobData> = {}): RestoreTestJobData => ({ target: 'shop', requestedBy, ...over });

const preMigration = {
  label: 'JIRA-9',
  requestedBy,
  backup: { ok: true as const, backupId: 'shop-20261201T020000Z', jobId: 'pm-backup', bytes: 10, durationMs: 5, retainUntil: null },
};

const criticalPage = (jobId: string) =>
  kit.pd.waitFor(
    (e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/restore-test' && JSON.stringify(e.payload?.custom_details).includes(jobId),
    30_000,
  );

describe('restoreTestProcessor', () => {
  describe('when a scheduled test finds no finished backup of its target', () => {
    it('says there is nothing to test, pages critical, and fails with that sentence', async () => {
      const empty = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), databaseUrl: source.url });
      try {
        const job = await empty.runJob(
          restoreTestProcessor({ config: empty.config, storage: empty.storage, notifier: empty.notifier, escalation: empty.escalation, log: empty.log }),
          testData(),
          { jobId: 'rt-nothing' },
        );
        expect(job.failedReason).toBe('There is no finished backup of shop to test: the scheduled restore test found nothing to restore.');
        expect(empty.messageAbout('rt-nothing')?.text).toBe(`Restore test of latest could not run: ${job.failedReason}`);
        const page = await empty.pd.waitFor((e) => e.dedup_key === 'pg-backup-bot/shop/restore-test', 30_000);
        expect(page.payload?.severity).toBe('critical');
        expect(page.payload?.summary).toBe(`Restore test of shop could not run: ${job.failedReason}`);
      } finally {
        await empty.stop();
      }
    });
  });

  describe('when the backup it names is gone', () => {
    it('could not run: said, paged, and a pre-migration checklist is still queued with the reason', async () => {
      const job = await kit.runJob(restoreTestProcessor(deps()), testData({ backupId: 'shop-20261120T020000Z', preMigration }), { jobId: 'rt-gone' });
      expect(job.failedReason).toMatch(/shop-20261120T020000Z/);
      expect(kit.messageAbout('rt-gone')?.text).toBe(`Restore test of shop-20261120T020000Z could not run: ${job.failedReason}`);
      expect((await criticalPage('rt-gone')).payload?.summary).toBe(`Restore test of shop could not run: ${job.failedReason}`);
      const checklist = await kit.queues.checklist.getJob('checklist-pre-migration-pm-backup');
      expect(checklist?.data).toMatchObject({
        kind: 'pre-migration',
        label: 'JIRA-9',
        restoreTest: { passed: null, jobId: 'rt-gone', problems: [job.failedReason] },
      });
    });
  });

  describe('when the scratch server is unreachable', () => {
    it('could not run: said and paged critical, recorded as not run, no record claims a verdict', async () => {
      const down = new URL(source.url);
      down.port = String(CLOSED_PORT);
      const config: Config = { ...kit.config, restoreTest: { ...kit.config.restoreTest, serverUrl: down.toString() } };
      const job = await kit.runJob(restoreTestProcessor(deps({ config })), testData({ backupId: good.backupId }), { jobId: 'rt-server-down' });
      expect(job.failedReason).toMatch(/^Could not connect to the database server at .*connection refused/);
      expect(kit.messageAbout('rt-server-down')?.text).toBe(`Restore test of ${good.backupId} could not run: ${job.failedReason}`);
      expect((await criticalPage('rt-server-down')).payload?.severity).toBe('critical');
      const records = await kit.storage.listRecords('restore-test', 'shop');
      // Recorded as not run (health and /metrics see it failing), never as passed or failed (QA).
      const mine = records.filter((r) => r.jobId === 'rt-server-down');
      expect(mine.map((r) => ({ passed: r.passed, problem: r.problems[0] }))).toEqual([{ passed: null, problem: `could not run: ${job.failedReason}` }]);
    });
  });

  describe('when a stored artifact does not match its checksum', () => {
    it('fails the test without restoring: verdict, problems in the thread, a record, a critical page', async () => {
      const body = 'the bytes the manifest was written for';
      const m = await storeBackup(kit.storage, 'shop', 'shop-20261202T020000Z', '2026-12-02T02:00:00.000Z', body);
      const file = join(kit.backupDir, 'shop', m.backupId, 'database.pgdump.zst');
      await writeFile(file, 'X'.repeat(Buffer.byteLength(body)));
      expect((await stat(file)).size).toBe(m.artifacts[0]?.bytes);
      const job = await kit.runJob(restoreTestProcessor(deps()), testData({ backupId: m.backupId }), { jobId: 'rt-corrupt' });
      expect(job.failedReason).toMatch(/^restore test failed: .*database\.pgdump\.zst.*(sha256|checksum)/i);
      const msg = kit.messageAbout('rt-corrupt');
      expect(msg?.text).toMatch(new RegExp(`^Restore test of ${m.backupId} FAILED: .*database\\.pgdump\\.zst`));
      expect(kit.thread(msg as NonNullable<typeof msg>).length).toBeGreaterThan(0);
      const record = (await kit.storage.listRecords('restore-test', 'shop')).find((r) => r.jobId === 'rt-corrupt');
      expect(record).toMatchObject({ passed: false, backupId: m.backupId });
      expect(record?.problems[0]).toMatch(/database\.pgdump\.zst/);
      const page = await criticalPage('rt-corrupt');
      expect(page.payload?.summary).toMatch(new RegExp(`^Restore test of shop FAILED \\(${m.backupId}\\): `));
    });
  });

  describe('when Redis refuses the outbox', () => {
    it('the channel message says PagerDuty could not be paged', async () => {
      const refusing = {
        failed: () => Promise.reject(new Error('READONLY You cannot write against a read only replica.')),
        passed: () => Promise.reject(new Error('READONLY You cannot write against a read only replica.')),
      };
      const job = await kit.runJob(restoreTestProcessor(deps({ escalation: refusing })), testData({ backupId: 'shop-20261121T020000Z' }), {
        jobId: 'rt-no-pager',
      });
      expect(await job.getState()).toBe('failed');
      expect(JSON.stringify(kit.messageAbout('rt-no-pager')?.blocks)).toMatch(/PagerDuty could NOT be paged \(Redis error, see logs\)/);
    });
  });

  it('a backup that restores passes (the error paths above are not the only outcome)', async () => {
    const job = await kit.runJob(restoreTestProcessor(deps()), testData({ backupId: good.backupId }), { jobId: 'rt-good' });
    expect(job.failedReason).toBeUndefined();
    expect(job.returnvalue).toEqual({ passed: true });
    expect(kit.messageAbout('rt-good')?.text).toMatch(new RegExp(`^Restore test of ${good.backupId} passed in `));
  });
});
