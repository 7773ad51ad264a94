import { PassThrough } from 'node:stream';
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { BotError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { s3ErrorName } from './s3-errors.ts';
import type { ArtifactWriter } from './types.ts';

export interface S3WriterOptions {
  client: S3Client;
  bucket: string;
  key: string;
  /** Bytes per multipart part (S3: at least 5 MiB, at most 10,000 parts per object). */
  partSize: number;
  /** Parts uploaded at once. Memory is about (queueSize + 1) × partSize, whatever the artifact's size. */
  queueSize: number;
  fail: (err: unknown, action: string) => BotError;
  log?: Logger | undefined;
}

/**
 * Streams one artifact to its final key through a multipart upload (lib-storage `Upload`), parts uploaded
 * while the dump is still running, so nothing the size of the dump is ever buffered or written to disk.
 *
 * S3 has no cheap rename, so there is no `.partial` key: the object may appear under its final key before the
 * backup is complete. That is safe because a backup exists only once its manifest does (written last, after
 * checking every artifact's size), and an aborted or failed writer removes what it uploaded. `commit()` waits
 * until S3 has acknowledged the whole object.
 */
export function openS3Writer(o: S3WriterOptions): ArtifactWriter {
  const stream = new PassThrough();
  // Errors reach the producer through its pipeline and the caller through commit(); without a listener here an
  // error nobody is piping from would crash the process.
  stream.on('error', () => undefined);
  const upload = new Upload({
    client: o.client,
    params: { Bucket: o.bucket, Key: o.key, Body: stream, ContentType: 'application/octet-stream' },
    partSize: o.partSize,
    queueSize: o.queueSize,
    // On failure lib-storage aborts the multipart upload, so no invisible parts stay behind (and billed).
    leavePartsOnError: false,
  });
  let state: 'open' | 'committed' | 'aborted' = 'open';
  const uploaded: Promise<void> = upload.done().then(
    () => undefined,
    (err: unknown) => {
      const failure = o.fail(err, 'upload');
      // Stop the producer: with nobody reading any more, its writes would wait on back-pressure forever.
      if (!stream.destroyed) stream.destroy(failure);
      throw failure;
    },
  );
  uploaded.catch(() => undefined); // observed by commit() or abort(); never an unhandled rejection meanwhile

  const removeObject = async () => {
    try {
      await o.client.send(new DeleteObjectCommand({ Bucket: o.bucket, Key: o.key }));
    } catch (err) {
      o.log?.warn({ err: s3ErrorName(err), key: o.key }, 'could not delete an aborted artifact; discardUnfinished will try again');
    }
  };

  return {
    stream,
    async commit() {
      if (state === 'committed') return;
      if (state === 'aborted') throw new Error(`commit() after abort() of ${o.key}`);
      if (!stream.writableFinished) throw new Error(`commit() before the stream of ${o.key} finished`);
      await uploaded;
      state = 'committed';
    },
    async abort() {
      if (state !== 'open') return;
      state = 'aborted';
      // Destroying the body makes the upload fail at its next read, which aborts the multipart upload; waiting
      // for that means no part is still in flight when the caller discards the backup.
      if (!stream.destroyed) stream.destroy(new Error('artifact writer aborted'));
      await uploaded.catch(() => undefined);
      // The whole object may have landed before the abort (a small one is a single PutObject).
      await removeObject();
    },
  };
}
