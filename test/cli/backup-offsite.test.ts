import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { cli } from '../support/app-backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { s3CopyEnv, startS3Server, TEST_CREDENTIALS, type TestS3Server } from '../support/s3-server.ts';

/**
 * `pg-backup-bot backup` with S3_MODE=copy makes the off-site copy a worker makes, and says so; a copy that fails is
 * said and fails the run (QA: the CLI, the path for when Slack is down, never copied and never said it).
 */
describe('the CLI backup and the off-site copy', () => {
  let dir: string;
  let s3: TestS3Server;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-s3-'));
    s3 = await startS3Server('pgbb-cli-copy');
    db = await createTestDatabase(inject('pgUrl'), 'clis3');
    await runSql(db.url, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)');
    const keys = await generateKeyPair();
    env = { BACKUP_DIR: dir, DATABASE_URL: db.url, TARGET_NAME: 'app', BACKUP_ENCRYPTION_RECIPIENT: keys.recipient, ...s3CopyEnv(s3, s3.bucket, 'cli') };
  });
  afterAll(async () => {
    await db?.drop();
    await s3?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('copies the backup to S3 and says where; with S3 away, says it was not copied and exits 1', async () => {
    const run = await cli(['backup'], env);
    expect(run.exitCode, run.stderr).toBe(0);
    const id = /^Backup (\S+) OK/.exec(run.stdout)?.[1] ?? '';
    expect(run.stdout).toContain(`  copied to   s3://${s3.bucket}/cli`);
    const remote = new S3Storage({
      bucket: s3.bucket,
      prefix: 'cli',
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: TEST_CREDENTIALS,
    });
    try {
      expect((await remote.list('app')).map((m) => m.backupId)).toEqual([id]);
    } finally {
      remote.destroy();
    }
    await s3.stop();
    try {
      const away = await cli(['backup'], env);
      expect(away.exitCode).toBe(1);
      expect(away.stdout).toMatch(/^Backup \S+ OK/);
      expect(away.stdout).toMatch(new RegExp(`\\n  NOT copied to s3://${s3.bucket}/cli: .+`));
    } finally {
      await s3.restart();
    }
  }, 120_000);
});
