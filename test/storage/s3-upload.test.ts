import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { startS3Server, testS3Storage, useS3Server, type RawBucket, type TestS3Server } from '../support/s3-server.ts';
import { makeManifest } from '../fixtures/backups.ts';

const MiB = 1024 * 1024;

/** `total` bytes of `data` in 64 KiB chunks, so the writer sees a stream as pg_dump | zstd would give it. */
function chunked(data: Buffer, onChunk?: (sent: number) => void | Promise<void>): Readable {
  return Readable.from(
    (async function* () {
      for (let off = 0; off < data.length; off += 64 * 1024) {
        await onChunk?.(off);
        yield data.subarray(off, off + 64 * 1024);
      }
    })(),
  );
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('S3Storage uploads', () => {
  let server: TestS3Server;
  let raw: RawBucket;
  useS3Server((s, r) => {
    server = s;
    raw = r;
  });

  it('streams a file larger than a part as a multipart upload whose sha256 reads back through openArtifact', async () => {
    const storage = testS3Storage(server, { prefix: 'multi', partSizeBytes: 5 * MiB, queueSize: 2 });
    try {
      const data = randomBytes(20 * MiB + 12345);
      const id = 'app-20260101T000000Z';
      await storage.beginBackup('app', id);
      const w = await storage.createArtifactWriter('app', id, 'database.pgdump.zst');
      const seen = server.requests.length;
      await pipeline(chunked(data), w.stream);
      await w.commit();
      // 5 parts (4 of 5 MiB and a short one), then CompleteMultipartUpload.
      const asked = server.requests.slice(seen);
      expect(asked.filter((r) => /^PUT \/pgbb-test\/multi\/app\/.*partNumber=/.test(r))).toHaveLength(5);
      expect(asked.filter((r) => /^POST .*uploadId=/.test(r))).toHaveLength(1);
      const back = createHash('sha256');
      let bytes = 0;
      for await (const chunk of await storage.openArtifact('app', id, 'database.pgdump.zst')) {
        back.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      expect({ bytes, sha256: back.digest('hex') }).toEqual({ bytes: data.length, sha256: sha256(data) });
      await storage.writeManifest(
        makeManifest({ target: 'app', backupId: id, startedAt: '2026-01-01T00:00:00Z', artifacts: [{ bytes: data.length, sha256: sha256(data) }] }),
      );
      expect((await storage.list()).map((m) => m.backupId)).toEqual([id]);
    } finally {
      storage.destroy();
    }
  });

  it('a writer destroyed mid-upload fails, aborts its multipart upload and leaves nothing once discarded', async () => {
    const storage = testS3Storage(server, { prefix: 'cut', partSizeBytes: 5 * MiB, queueSize: 2 });
    try {
      const data = randomBytes(16 * MiB);
      const id = 'app-20260101T000000Z';
      await storage.beginBackup('app', id);
      const w = await storage.createArtifactWriter('app', id, 'database.pgdump.zst');
      const seen = server.requests.length;
      // pg_dump dies after 12 MiB: two parts are already uploaded.
      const source = chunked(data, (sent) => {
        if (sent >= 12 * MiB) throw new Error('pg_dump died');
      });
      await expect(pipeline(source, w.stream)).rejects.toThrow('pg_dump died');
      await expect(w.commit()).rejects.toThrow();
      await w.abort();
      const asked = server.requests.slice(seen);
      expect(asked.filter((r) => /^PUT .*partNumber=/.test(r)).length).toBeGreaterThanOrEqual(2);
      expect(asked.some((r) => /^DELETE .*uploadId=/.test(r))).toBe(true); // AbortMultipartUpload was sent
      await expect(storage.readManifest('app', id)).rejects.toMatchObject({ code: 'backup_not_found' });
      expect(await storage.list()).toEqual([]);
      await storage.discardUnfinished('app', id);
      expect(await raw.keys('cut/')).toEqual([]);
    } finally {
      storage.destroy();
    }
  });

  it('an outage mid-upload fails the writer with a sentence naming the bucket, and no manifest is ever written', async () => {
    const own = await startS3Server('outage-bucket');
    const storage = testS3Storage(own, { prefix: 'p', partSizeBytes: 5 * MiB, queueSize: 2, maxAttempts: 1 });
    try {
      const data = randomBytes(24 * MiB);
      const id = 'app-20260101T000000Z';
      await storage.beginBackup('app', id);
      const w = await storage.createArtifactWriter('app', id, 'database.pgdump.zst');
      const source = chunked(data, async (sent) => {
        if (sent === 6 * MiB) await own.stop();
      });
      const failure = await pipeline(source, w.stream)
        .then(
          () => w.commit(),
          (err: unknown) => Promise.reject(err),
        )
        .then(
          () => null,
          (err: unknown) => err,
        );
      expect(failure).toMatchObject({
        code: 'storage_failed',
        userMessage: expect.stringMatching(
          /^Could not reach S3 to upload database\.pgdump\.zst of backup app-20260101T000000Z in s3:\/\/outage-bucket\/p \((ECONNREFUSED|ECONNRESET)\)/,
        ),
      });
      await w.abort();
      const m = makeManifest({ target: 'app', backupId: id, startedAt: '2026-01-01T00:00:00Z', artifacts: [{ bytes: data.length, sha256: sha256(data) }] });
      await expect(storage.writeManifest(m)).rejects.toMatchObject({ code: 'storage_failed', userMessage: expect.stringContaining('s3://outage-bucket/p') });
      // While S3 is away the listing fails loudly, never an empty list that would read as "no backups".
      await expect(storage.list()).rejects.toMatchObject({
        code: 'storage_failed',
        userMessage: expect.stringContaining('list backups in s3://outage-bucket/p'),
      });
      await own.restart();
      await expect(storage.writeManifest(m)).rejects.toMatchObject({ code: 'storage_failed', userMessage: expect.stringContaining('has no bytes') });
      expect(await storage.list()).toEqual([]);
      expect((await storage.listUnfinished(0)).map((u) => u.backupId)).toEqual([id]);
      await storage.discardUnfinished('app', id);
      expect(await storage.listUnfinished(0)).toEqual([]);
    } finally {
      storage.destroy();
      await own.close();
    }
  });

  it('names the bucket and the operation when S3 refuses, and never shows credentials', async () => {
    // s3rver knows only its own access key id: any other is refused like a wrong key on AWS.
    const denied = testS3Storage(server, { credentials: { accessKeyId: 'AKIDSECRETISH', secretAccessKey: 'very-secret-key' } });
    const missing = testS3Storage(server, { bucket: 'no-such-bucket' });
    try {
      const err = await denied.list().catch((e: unknown) => e);
      expect(err).toMatchObject({
        code: 'storage_failed',
        userMessage: `S3 refused to let the bot list backups in s3://${server.bucket}/pgbb (InvalidAccessKeyId, HTTP 403); check the credentials and the bucket policy.`,
      });
      expect(`${JSON.stringify(err)} ${String(err)}`).not.toMatch(/AKIDSECRETISH|very-secret-key/);
      // The cause kept for logs is stripped of the SDK's raw HTTP exchange (signed request headers included).
      expect((err as { cause?: object }).cause).toMatchObject({ name: 'InvalidAccessKeyId', httpStatusCode: 403 });
      expect((err as { cause?: object }).cause).not.toHaveProperty('$response');
      await expect(missing.beginBackup('app', 'app-20260101T000000Z')).rejects.toMatchObject({
        code: 'storage_failed',
        userMessage: 'Could not reserve backup app-20260101T000000Z: the bucket of s3://no-such-bucket/pgbb does not exist; check S3_BUCKET and S3_REGION.',
      });
    } finally {
      denied.destroy();
      missing.destroy();
    }
  });
});
