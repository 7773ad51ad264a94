import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import type { RestoreJobData } from '../../src/jobs/queues.ts';
import { runBackup } from '../../src/postgres/backup/index.ts';
import type { Manifest } from '../../src/storage/index.ts';
import { restoreProcessor, type RestoreWorkerDeps } from '../../src/workers/restore-worker.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { backupOptions, withClient } from '../support/postgres-helpers.ts';
import { requestedBy, startWorkerKit, type WorkerKit } from './worker-kit.ts';
import { CLOSED_PORT } from '../support/closed-port.ts';

/**
 * The selective-restore processor's error paths: each fails the job with the sentence the channel message shows, and
 * each is recorded beside the backups (a restore is always recorded), and the database it named is left alone.
 */

let kit: WorkerKit;
let source: Awaited<ReturnType<typeof createTestDatabase>>;
let backup: Manifest;

beforeAll(async () => {
  source = await createTestDatabase(inject('pgUrl'), 'wrs');
  await runSql(source.url, 'CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100);');
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), databaseUrl: source.url });
  const target = kit.config.targets[0];
  if (!target) throw new Error('the kit has no target');
  backup = await runBackup(backupOptions(source.url, kit.storage, { target, backupId: 'shop-20261201T030000Z' }));
});

afterAll(async () => {
  await kit?.stop();
  await source?.drop();
});

const deps = (over: Partial<RestoreWorkerDeps> = {}): RestoreWorkerDeps => ({
  config: kit.config,
  storage: kit.storage,
  notifier: kit.notifier,
  escalation: kit.escalation,
  log: kit.log,
  ...over,
});

const restoreData = (over: Partial<RestoreJobData> = {}): RestoreJobData => ({
  target: 'shop',
  backupId: backup.backupId,
  tables: ['public.orders'],
  schemas: [],
  into: { database: 'orders_copy', create: true },
  requestedBy,
  confirmedBy: null,
  ...over,
});

async function recordOf(jobId: string) {
  return (await kit.storage.listRecords('restore', 'shop')).find((r) => r.jobId === jobId);
}

describe('restoreProcessor', () => {
  describe('when a restore into an existing database carries no confirmation', () => {
    it('refuses before touching it: failedReason, the channel message and the record say so', async () => {
      await runSql(source.url, 'DELETE FROM orders WHERE id > 50');
      const job = await kit.runJob(restoreProcessor(deps()), restoreData({ into: { database: source.name, create: false } }), { jobId: 'rs-unconfirmed' });
      expect(job.failedReason).toBe('A restore into an existing database needs a confirmation by an allowed user; nothing was changed.');
      expect(kit.messageAbout('rs-unconfirmed')?.text).toBe(`Restore into ${source.name} FAILED: ${job.failedReason}`);
      expect(await recordOf('rs-unconfirmed')).toMatchObject({ passed: null, problems: [job.failedReason] });
      expect(await withClient(source.url, async (c) => (await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n)).toBe(50);
    });
  });

  describe('when the backup it names is gone', () => {
    it('fails with a sentence naming the backup, said in the channel and recorded', async () => {
      const job = await kit.runJob(restoreProcessor(deps()), restoreData({ backupId: 'shop-20261101T030000Z' }), { jobId: 'rs-gone' });
      expect(job.failedReason).toMatch(/shop-20261101T030000Z/);
      expect(kit.messageAbout('rs-gone')?.text).toBe(`Restore into orders_copy FAILED: ${job.failedReason}`);
      expect((await recordOf('rs-gone'))?.problems).toEqual([job.failedReason]);
    });
  });

  describe('when the target server is unreachable', () => {
    it('fails with the connection sentence, said in the channel and recorded', async () => {
      const down = new URL(source.url);
      down.port = String(CLOSED_PORT);
      const config: Config = { ...kit.config, targets: kit.config.targets.map((t) => ({ ...t, url: down.toString() })) };
      const job = await kit.runJob(restoreProcessor(deps({ config })), restoreData(), { jobId: 'rs-server-down' });
      expect(job.failedReason).toMatch(/^Could not connect to the database server at .*connection refused/);
      expect(kit.messageAbout('rs-server-down')?.text).toBe(`Restore into orders_copy FAILED: ${job.failedReason}`);
      expect((await recordOf('rs-server-down'))?.problems[0]).toBe(job.failedReason);
    });
  });

  describe('when Slack refuses every edit of the message', () => {
    it('the verdict is posted as a message of its own', async () => {
      kit.slack.rateLimitNext(1000, 1, 'chat.update');
      try {
        await kit.runJob(restoreProcessor(deps()), restoreData({ backupId: 'shop-20261102T030000Z' }), { jobId: 'rs-slack' });
      } finally {
        kit.slack.rateLimitNext(0);
      }
      const about = [...kit.slack.messages.values()].filter((m) => !m.thread_ts && JSON.stringify(m.blocks ?? '').includes('rs-slack'));
      expect(about.map((m) => m.text)).toEqual([expect.stringMatching(/running/), expect.stringMatching(/^Restore into orders_copy FAILED: /)]);
    });
  });
});
