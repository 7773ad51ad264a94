import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { copyBackup, copyToAll, createStorageFromConfig, LocalStorage } from '../../src/storage/index.ts';
import { S3Storage } from '../../src/storage/s3-storage.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { TEST_CREDENTIALS, testS3Storage, useS3Server, type RawBucket, type TestS3Server } from '../support/s3-server.ts';
import { tempRoot } from './fixtures.ts';

const log = createLogger({ level: 'silent' });
const MiB = 1024 * 1024;

describe('copyBackup between local storage and S3', () => {
  let server: TestS3Server;
  let raw: RawBucket;
  let local: LocalStorage;
  let root: string;
  let cleanup: () => Promise<void>;
  let s3: S3Storage;
  let n = 0;
  useS3Server((s, r) => {
    server = s;
    raw = r;
  });
  beforeEach(async () => {
    ({ root, storage: local, cleanup } = await tempRoot());
    s3 = testS3Storage(server, { prefix: `copy${++n}`, partSizeBytes: 5 * MiB });
  });
  afterEach(async () => {
    s3.destroy();
    await cleanup();
  });

  it('copies local → S3 (multipart, verified on the way, manifest last) and back to another disk', async () => {
    const body = randomBytes(7 * MiB);
    const m = await storeBackup(local, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00.000Z', body);
    const r = await copyBackup(local, s3, m, { log });
    expect(r).toMatchObject({ destination: s3.describe(), backupId: m.backupId, bytes: body.length, alreadyThere: false });
    expect(await s3.list()).toEqual([m]);
    expect((await raw.get(`copy${n}/app/${m.backupId}/database.pgdump.zst`)).equals(body)).toBe(true);
    const manifestPut = server.events.indexOf(`ObjectCreated:Put copy${n}/app/${m.backupId}/manifest.json`);
    expect(server.events.slice(manifestPut + 1).filter((e) => e.includes(`copy${n}/app/${m.backupId}/`))).toEqual([]);

    // Again: the destination already holds this very backup, nothing is sent.
    expect(await copyBackup(local, s3, m, { log })).toMatchObject({ alreadyThere: true });

    const other = await tempRoot();
    try {
      await copyBackup(s3, other.storage, m, { log });
      expect(await other.storage.list()).toEqual([m]);
      expect((await readFile(join(other.root, 'app', m.backupId, 'database.pgdump.zst'))).equals(body)).toBe(true);
    } finally {
      await other.cleanup();
    }
  });

  it('fails on a corrupted source, names the file and discards the partial copy', async () => {
    const body = randomBytes(6 * MiB);
    const m = await storeBackup(local, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00.000Z', body);
    const file = join(root, 'app', m.backupId, 'database.pgdump.zst');
    const flipped = Buffer.from(body);
    flipped[3 * MiB] = (flipped[3 * MiB] ?? 0) ^ 0xff; // same size, one byte changed: only the hash can tell
    await writeFile(file, flipped);
    await expect(copyBackup(local, s3, m, { log })).rejects.toMatchObject({
      code: 'storage_failed',
      userMessage: expect.stringMatching(
        new RegExp(
          `^Copying backup ${m.backupId} to s3://${server.bucket}/copy${n} failed: database\\.pgdump\\.zst read from local:.* has sha256 [0-9a-f]{12}…, not ${m.artifacts[0]?.sha256.slice(0, 12)}…`,
        ),
      ),
    });
    expect(await raw.keys(`copy${n}/`)).toEqual([]);

    await writeFile(file, Buffer.concat([body, Buffer.from('trailing garbage')]));
    await expect(copyBackup(local, s3, m, { log })).rejects.toMatchObject({ userMessage: expect.stringContaining('has more than the') });
    await writeFile(file, body.subarray(0, 1000));
    await expect(copyBackup(local, s3, m, { log })).rejects.toMatchObject({ userMessage: expect.stringContaining('has 1000 bytes, not the') });
    expect(await raw.keys(`copy${n}/`)).toEqual([]);
    expect(await s3.list()).toEqual([]);
  });

  it('replaces a leftover unfinished copy, refuses to overwrite a different backup, and stops when canceled', async () => {
    const m = await storeBackup(local, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00.000Z');
    await s3.beginBackup('app', m.backupId); // a crashed earlier copy
    await copyBackup(local, s3, m, { log });
    expect(await s3.list()).toEqual([m]);

    const other = await tempRoot();
    try {
      const different = await storeBackup(other.storage, 'app', m.backupId, '2026-01-01T00:00:00.000Z', 'other data');
      await expect(copyBackup(other.storage, s3, different, { log })).rejects.toMatchObject({ code: 'backup_exists' });
      expect(await s3.list()).toEqual([m]);
    } finally {
      await other.cleanup();
    }

    const m2 = await storeBackup(local, 'app', 'app-20260102T000000Z', '2026-01-02T00:00:00.000Z');
    await expect(copyBackup(local, s3, m2, { log, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'canceled' });
    expect(await s3.list()).toEqual([m]);
  });

  it('copyToAll reports each destination, a failure as a sentence, and never throws', async () => {
    const m = await storeBackup(local, 'app', 'app-20260101T000000Z', '2026-01-01T00:00:00.000Z');
    const gone = testS3Storage(server, { bucket: 'no-such-bucket' });
    try {
      const outcomes = await copyToAll(local, [gone, s3], m, { log });
      expect(outcomes).toEqual([
        {
          ok: false,
          destination: 's3://no-such-bucket/pgbb',
          backupId: m.backupId,
          code: 'storage_failed',
          error: `Could not reserve backup ${m.backupId}: the bucket of s3://no-such-bucket/pgbb does not exist; check S3_BUCKET and S3_REGION.`,
        },
        expect.objectContaining({ ok: true, destination: s3.describe(), alreadyThere: false }),
      ]);
      expect(await s3.list()).toEqual([m]);
    } finally {
      gone.destroy();
    }
  });
});

describe('createStorageFromConfig', () => {
  const s3 = { bucket: 'b', prefix: 'pgbb/prod', region: 'eu-west-1', endpoint: 'http://127.0.0.1:9', forcePathStyle: true };
  const extra = { credentials: TEST_CREDENTIALS };

  it('uses the local directory alone without S3', async () => {
    const { primary, copies } = await createStorageFromConfig({ backupDir: '/tmp/pgbb-x' }, log, extra);
    expect(primary).toBeInstanceOf(LocalStorage);
    expect(primary.describe()).toBe('local:/tmp/pgbb-x');
    expect(copies).toEqual([]);
  });

  it('makes S3 the primary store in primary mode', async () => {
    const { primary, copies } = await createStorageFromConfig({ backupDir: '/tmp/pgbb-x', s3: { ...s3, mode: 'primary' } }, log, extra);
    expect(primary).toBeInstanceOf(S3Storage);
    expect(primary.describe()).toBe('s3://b/pgbb/prod');
    expect(copies).toEqual([]);
    (primary as S3Storage).destroy();
  });

  it('copies to S3 after the local backup in copy mode', async () => {
    const { primary, copies } = await createStorageFromConfig({ backupDir: '/tmp/pgbb-x', s3: { ...s3, mode: 'copy' } }, log, extra);
    expect(primary).toBeInstanceOf(LocalStorage);
    expect(copies.map((c) => c.describe())).toEqual(['s3://b/pgbb/prod']);
    for (const c of copies) (c as S3Storage).destroy();
  });
});
