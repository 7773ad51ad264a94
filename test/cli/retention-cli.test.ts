import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../src/dev/ephemeral.ts';
import { QUEUE } from '../../src/jobs/queues.ts';
import type { LocalStorage, Manifest } from '../../src/storage/index.ts';
import { createLogger } from '../../src/logger.ts';
import { copyBackup } from '../../src/storage/copy.ts';
import { s3CopyEnv, startS3Server, testS3Storage, type TestS3Server } from '../support/s3-server.ts';
import { tempRoot } from '../storage/fixtures.ts';
import { store } from '../storage/retention-fixtures.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', USER: 'oncall', ...env }, extendEnv: false, reject: false });

describe('pg-backup-bot retention', () => {
  let root: string;
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  let env: Record<string, string>;
  let expired: Manifest;
  let newest: Manifest;
  const ids = async () => (await storage.list()).map((m) => m.backupId).sort();

  beforeEach(async () => {
    ({ root, storage, cleanup } = await tempRoot());
    // No Slack, no DATABASE_URL: the storage and Redis are all it needs.
    env = { BACKUP_DIR: root, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: `{cli-${randomUUID().slice(0, 8)}}` };
    const now = new Date();
    expired = await store(storage, 'shop', now, 40, 30);
    newest = await store(storage, 'shop', now, 1, 30);
  });
  afterEach(() => cleanup());

  it('--dry-run prints what it would delete, deletes nothing, exits 0', async () => {
    const run = await cli(['retention', '--dry-run'], env);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout.split('\n')).toEqual([
      `Retention on local:${root} (dry run, nothing deleted): would delete 1 backup and 0 unfinished or damaged backups; kept 1.`,
      expect.stringMatching(new RegExp(`^• Would delete ${expired.backupId}: expired .* \\(daily\\)$`)),
    ]);
    expect(await ids()).toEqual([expired.backupId, newest.backupId].sort());
  });

  it('deletes, prints the report, exits 0, and leaves a line in the audit trail', async () => {
    const run = await cli(['retention'], env);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(`^Retention on local:\\S+: deleted 1 backup and 0 unfinished or damaged backups; kept 1.\\n• Deleted ${expired.backupId}: expired`),
    );
    expect(await ids()).toEqual([newest.backupId]);
    const audit = (await readFile(join(root, '_audit', 'audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit).toEqual([
      expect.objectContaining({
        kind: 'job',
        what: 'retention',
        userName: 'oncall',
        args: `cli local:${root} ${expired.backupId}`,
        result: expect.stringMatching(/^deleted: expired/),
      }),
    ]);
  });

  it('keeps a backup whose restore test is queued in Redis', async () => {
    const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE.restoreTest, { connection: redis, prefix: env.QUEUE_PREFIX ?? '' });
    try {
      await queue.add('restore-test', { target: 'shop', backupId: expired.backupId, requestedBy: { source: 'slack', userName: 'oncall' } });
      const run = await cli(['retention'], env);
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toContain(`• Kept ${expired.backupId}: expired`);
      expect(run.stdout).toMatch(/kept: a restore test of it is running$/m);
      expect(await ids()).toEqual([expired.backupId, newest.backupId].sort());
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      redis.disconnect();
    }
  });

  it('without Redis it refuses to delete (exit 1), and a dry run still reports', async () => {
    const noRedis = { ...env, REDIS_URL: `redis://127.0.0.1:${await freePort()}` };
    const refused = await cli(['retention'], noRedis);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^Refusing to delete: Redis at REDIS_URL does not answer/);
    expect(refused.stdout).toBe('');
    expect(await ids()).toEqual([expired.backupId, newest.backupId].sort());
    const dry = await cli(['retention', '--dry-run'], noRedis);
    expect(dry.exitCode).toBe(0);
    expect(dry.stderr).toMatch(/restore tests and backups running now are unknown/);
    expect(dry.stdout).toContain(`• Would delete ${expired.backupId}`);
  });

  it('exits 2 on anything but --dry-run', async () => {
    const run = await cli(['retention', '--force'], env);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/^usage: pg-backup-bot retention \[--dry-run\]/);
  });

  describe('with an S3 copy', () => {
    let server: TestS3Server;
    beforeAll(async () => {
      server = await startS3Server();
    });
    afterAll(async () => {
      await server?.close();
    });
    const s3env = (bucket: string, prefix = `cli-${randomUUID().slice(0, 8)}`) => s3CopyEnv(server, bucket, prefix);

    it('cleans the copy too', async () => {
      const prefix = `cli-${randomUUID().slice(0, 8)}`;
      const copy = testS3Storage(server, { prefix });
      try {
        for (const m of [expired, newest]) await copyBackup(storage, copy, m, { log: createLogger({ level: 'silent' }) });
        const run = await cli(['retention'], { ...env, ...s3env(server.bucket, prefix) });
        expect(run.exitCode).toBe(0);
        expect(run.stdout).toContain(
          `Retention on s3://pgbb-test/${prefix} (copy): deleted 1 backup and 0 unfinished or damaged backups; kept 1.\n• Deleted ${expired.backupId}`,
        );
        expect((await copy.list()).map((m) => m.backupId)).toEqual([newest.backupId]);
        expect(await ids()).toEqual([newest.backupId]);
      } finally {
        copy.destroy();
      }
    });

    it('exits 1 when a storage cannot be read, after cleaning the others', async () => {
      const run = await cli(['retention'], { ...env, ...s3env('no-such-bucket') });
      expect(run.exitCode).toBe(1);
      expect(run.stdout).toMatch(/^Retention on s3:\/\/no-such-bucket\/cli-\S+ \(copy\): could not read it, nothing deleted there: /m);
      expect(await ids()).toEqual([newest.backupId]);
    });
  });
});
