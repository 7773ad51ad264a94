import { defaultTarget } from '../../src/config.ts';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runBackup } from '../../src/postgres/backup/index.ts';
import type { Manifest } from '../../src/storage/index.ts';
import type { S3Storage } from '../../src/storage/s3-storage.ts';
import { backupOptions, countsOf, listArtifact, restoreInto } from '../support/postgres-helpers.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { rawBucket, startS3Server, testS3Storage, type TestS3Server } from '../support/s3-server.ts';

const schema = await readFile(new URL('../fixtures/realistic-schema.sql', import.meta.url), 'utf8');
const MiB = 1024 * 1024;

/** Downloads an artifact from storage to a local file, hashing it on the way. */
async function download(storage: S3Storage, m: Manifest, file: string, dir: string): Promise<{ path: string; sha256: string; bytes: number }> {
  const path = join(dir, file);
  const hash = createHash('sha256');
  let bytes = 0;
  const source = await storage.openArtifact(m.target, m.backupId, file);
  source.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
  });
  await pipeline(source, createWriteStream(path));
  return { path, sha256: hash.digest('hex'), bytes };
}

describe('runBackup straight into S3 (primary storage)', () => {
  let server: TestS3Server;
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let work: string;
  beforeAll(async () => {
    server = await startS3Server();
    source = await createTestDatabase(inject('pgUrl'), 's3src');
    await runSql(source.url, schema);
    // Random bytes do not compress: about 13 MiB of dump, so the artifact is a multipart upload of 5 MiB parts.
    await runSql(
      source.url,
      `CREATE TABLE public.noise AS SELECT g AS id, decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') AS b FROM generate_series(1, 200000) g`,
    );
    work = await mkdtemp(join(tmpdir(), 'pgbb-s3e2e-'));
  });
  afterAll(async () => {
    await source?.drop();
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('writes a backup whose artifacts restore from S3 with zstd -dc | pg_restore', async () => {
    const s3 = testS3Storage(server, { prefix: 'e2e', partSizeBytes: 5 * MiB });
    const raw = rawBucket(server);
    try {
      const seen = server.requests.length;
      const target = defaultTarget('app', source.url, 'staging');
      const m = await runBackup(backupOptions(source.url, s3, { target, encryption: null }));
      expect(await s3.list()).toEqual([m]);
      expect(await raw.keys('e2e/')).toEqual([
        `e2e/app/${m.backupId}/.reserved`,
        `e2e/app/${m.backupId}/database.pgdump.zst`,
        `e2e/app/${m.backupId}/globals.sql.zst`,
        `e2e/app/${m.backupId}/manifest.json`,
      ]);
      const db = m.artifacts.find((a) => a.role === 'database');
      expect(db?.bytes).toBeGreaterThan(10 * MiB);
      expect(
        server.requests.slice(seen).filter((r) => /^PUT \/pgbb-test\/e2e\/app\/.*database\.pgdump\.zst\?.*partNumber=/.test(r)).length,
      ).toBeGreaterThanOrEqual(3);

      const got = await download(s3, m, db?.file ?? '', work);
      expect({ sha256: got.sha256, bytes: got.bytes }).toEqual({ sha256: db?.sha256, bytes: db?.bytes });
      const listing = await listArtifact(got.path);
      expect(listing).toContain('TABLE shop orders_2025');
      expect(listing).toContain('TABLE DATA public noise');

      const restored = await createTestDatabase(inject('pgUrl'), 's3restored');
      try {
        await restoreInto(got.path, restored.url);
        expect(await countsOf(restored.url)).toEqual(m.verification);
      } finally {
        await restored.drop();
      }
    } finally {
      s3.destroy();
      raw.destroy();
    }
  });

  describe('an S3 outage while pg_dump is still writing', () => {
    let failure: unknown;
    let left: Awaited<ReturnType<S3Storage['listUnfinished']>> = [];
    let manifests: Manifest[] | undefined;
    beforeAll(async () => {
      const own = await startS3Server('outage-bucket');
      // One 5 MiB part in flight at a time: the dump (about 13 MiB) cannot all fit in memory, so pg_dump is
      // still writing when the first part fails, and the failure reaches the dump's pipeline.
      const s3 = testS3Storage(own, { prefix: 'e2e', partSizeBytes: 5 * MiB, queueSize: 1, maxAttempts: 1 });
      try {
        void own.waitForRequest(/database\.pgdump\.zst\?partNumber=1&/).then(() => own.stop());
        const target = defaultTarget('app', source.url, 'staging');
        failure = await runBackup(backupOptions(source.url, s3, { target, encryption: null })).then(
          () => null,
          (err: unknown) => err,
        );
        await own.restart();
        manifests = await s3.list();
        // discardUnfinished could not reach S3 either: what is left is an unfinished backup, for cleanup to find.
        left = await s3.listUnfinished(0);
        for (const u of left) await s3.discardUnfinished(u.target, u.backupId);
        expect(await s3.listUnfinished(0)).toEqual([]);
      } finally {
        s3.destroy();
        await own.close();
      }
    });

    it('fails the backup and never leaves a manifest', () => {
      expect(failure).toMatchObject({ code: expect.stringMatching(/^(storage_failed|internal)$/) });
      expect(manifests).toEqual([]);
      expect(left).toHaveLength(1);
    });

    // backup-failure.ts returns a BotError found in a ToolPipeError's cause: the storage's own sentence reaches the verdict.
    it('says in the verdict that S3 could not be reached, naming the bucket', () => {
      expect(failure).toMatchObject({
        code: 'storage_failed',
        userMessage: expect.stringMatching(
          /^Could not reach S3 to upload database\.pgdump\.zst of backup app-\S+ in s3:\/\/outage-bucket\/e2e \(ECONN(REFUSED|RESET)\)/,
        ),
      });
    });
  });
});
