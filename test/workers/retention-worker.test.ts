import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createAuditLog, type AuditLog } from '../../src/audit.ts';
import { createQueues } from '../../src/jobs/queues.ts';
import { BotError } from '../../src/errors.ts';
import type { Storage } from '../../src/storage/index.ts';
import { retentionProcessor, type RetentionWorkerDeps } from '../../src/workers/retention-worker.ts';
import { store } from '../storage/retention-fixtures.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The retention processor's error paths: retention that cannot run at all, a deletion that fails, a storage that
 * cannot be read, and a job whose data does not fit. Each is said in the channel and fails the job, after the report.
 */

let kit: WorkerKit;
let auditDir: string;
let audit: AuditLog;

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  auditDir = await mkdtemp(join(tmpdir(), 'pgbb-audit-'));
  audit = createAuditLog(auditDir, kit.log);
});

// Each test starts from an empty backup directory: what one test left expired must not count in the next.
afterEach(async () => {
  for (const m of await kit.storage.list('shop')) await kit.storage.deleteBackup('shop', m.backupId);
});

afterAll(async () => {
  await kit?.stop();
  if (auditDir) await rm(auditDir, { recursive: true, force: true });
});

const deps = (over: Partial<RetentionWorkerDeps> = {}): RetentionWorkerDeps => ({
  storage: kit.storage,
  copies: [],
  queues: kit.queues,
  notifier: kit.notifier,
  audit,
  log: kit.log,
  ...over,
});

/** The storage as it is, except for the methods given. */
const storageWith = (over: Partial<Storage>): Storage =>
  new Proxy(kit.storage, {
    get(target, key, receiver) {
      if (key in over) return over[key as keyof Storage];
      const value: unknown = Reflect.get(target, key, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });

/** An expired backup (kept 30 days, `ageDays` old) beside a fresh one, so retention would delete the expired one. */
async function expiredBesideFresh(ageDays: number) {
  await store(kit.storage, 'shop', new Date(), 1, 30);
  return store(kit.storage, 'shop', new Date(), ageDays, 30);
}

const retentionPosts = () => [...kit.slack.messages.values()].filter((m) => /Retention/.test(m.text ?? '')).map((m) => m.text ?? '');

describe('retentionProcessor', () => {
  describe('when the job data does not fit', () => {
    it('fails at once with a sentence, said in the channel; nothing is deleted', async () => {
      const expired = await expiredBesideFresh(60);
      const job = await kit.runJob(retentionProcessor(deps()), { dryRun: 'yes' }, { jobId: 'rn-bad-data' });
      expect(job.failedReason).toMatch(/^The retention job rn-bad-data was not run: its data does not fit this version of pg-backup-bot/);
      expect([...kit.slack.messages.values()].some((m) => (m.text ?? '').includes('retention job rn-bad-data was not run'))).toBe(true);
      expect(existsSync(join(kit.backupDir, 'shop', expired.backupId))).toBe(true);
    });
  });

  describe('when the queues cannot be read (Redis down)', () => {
    it('deletes nothing blind, says so in one line, and fails with the reason', async () => {
      const expired = await expiredBesideFresh(61);
      // A connection Redis refuses every read and write on (NOPERM), as a Redis that went down would refuse them.
      const user = `pgbb-refused-${randomUUID().slice(0, 8)}`;
      await kit.redis.call('ACL', 'SETUSER', user, 'on', 'nopass', '~*', '&*', '+@all', '-@read', '-@write', '-@scripting');
      const refused = new Redis(inject('redisUrl'), { username: user, password: 'any', maxRetriesPerRequest: null });
      const queues = createQueues(refused, kit.prefix);
      const before = retentionPosts().length;
      const job = await kit.runJob(retentionProcessor(deps({ queues })), { dryRun: false }, { jobId: 'rn-no-redis' }).finally(async () => {
        await queues.close();
        refused.disconnect();
        await kit.redis.call('ACL', 'DELUSER', user);
      });
      expect(job.failedReason).toBe('Something unexpected went wrong inside the bot; the details are in its logs.');
      expect(kit.logs.some((l) => l.includes('retention could not run') && l.includes('NOPERM'))).toBe(true);
      expect(await job.getState()).toBe('failed');
      expect(retentionPosts().slice(before)).toEqual([`:warning: Retention did not run, nothing was deleted: ${job.failedReason}`]);
      expect(existsSync(join(kit.backupDir, 'shop', expired.backupId))).toBe(true);
    });
  });

  describe('when a deletion fails', () => {
    it('reports it in the channel, audits it, keeps the backup, and fails the job after the report', async () => {
      const expired = await expiredBesideFresh(62);
      const refusing = storageWith({ deleteBackup: () => Promise.reject(new BotError('storage_failed', 'The backup directory is read-only (EROFS).')) });
      const before = retentionPosts().length;
      const job = await kit.runJob(retentionProcessor(deps({ storage: refusing })), { dryRun: false }, { jobId: 'rn-delete-fails' });
      expect(job.failedReason).toBe('retention: 1 deletion(s) failed, 0 storage(s) unreadable (reported in the channel)');
      const [post] = retentionPosts().slice(before);
      expect(post).toMatch(/^:warning: Retention on local:/);
      expect(post).toMatch(new RegExp(`${expired.backupId}.*The backup directory is read-only \\(EROFS\\)`));
      expect(existsSync(join(kit.backupDir, 'shop', expired.backupId))).toBe(true);
      await audit.flush();
      const lines = (await readFile(join(auditDir, '_audit', 'audit.jsonl'), 'utf8')).trim().split('\n');
      const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.jobId === 'rn-delete-fails');
      expect(line).toMatchObject({ kind: 'job', what: 'retention', result: 'delete failed: The backup directory is read-only (EROFS).' });
    });
  });

  describe('when a storage cannot be listed', () => {
    it('says the storage is unreadable and fails the job', async () => {
      const unreadable = storageWith({ list: () => Promise.reject(new BotError('storage_failed', 'The backup directory cannot be read (EIO).')) });
      const before = retentionPosts().length;
      const job = await kit.runJob(retentionProcessor(deps({ storage: unreadable })), { dryRun: false }, { jobId: 'rn-unreadable' });
      expect(job.failedReason).toBe('retention: 0 deletion(s) failed, 1 storage(s) unreadable (reported in the channel)');
      const [post] = retentionPosts().slice(before);
      expect(post).toMatch(/^:warning: Retention on /);
      expect(post).toMatch(/The backup directory cannot be read \(EIO\)/);
    });
  });
});
