import { PassThrough, Writable } from 'node:stream';
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
  /** Parts uploaded at once. Memory grows with (queueSize + 1) × partSize (plus the SDK's copies), never with the artifact. */
  queueSize: number;
  fail: (err: unknown, action: string) => BotError;
  log?: Logger | undefined;
  /**
   * Over a damaged backup's object (a repair, copy-scrub.ts): an abort leaves the key alone. An upload cut short left
   * the old object; one that landed holds bytes the caller found wrong, and the backup stays marked damaged either way.
   */
  replacing?: boolean;
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
  // Two streams, not one: lib-storage destroys the body it reads with a bare AbortError the moment one part
  // fails. The producer must hear the real cause instead, so it writes into `stream`, which forwards to `body`
  // and is failed with the upload's own error once that is known.
  const body = new PassThrough();
  body.on('error', () => undefined);
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      // When the body is no longer read (the upload failed), 'drain' never comes: `uploaded` fails the stream.
      if (body.write(chunk)) done();
      else body.once('drain', () => done());
    },
    final(done) {
      body.end();
      done();
    },
    destroy(err, done) {
      // The producer gave up before the end: a body that stops short makes the upload fail and abort. (After
      // 'finish' Node destroys every Writable by itself; the upload must then go on reading the body.)
      if (!body.destroyed && (err || !stream.writableFinished)) body.destroy(err ?? new Error('artifact writer destroyed'));
      done(err);
    },
  });
  // Errors reach the producer through its pipeline and the caller through commit(); without a listener here an
  // error nobody is piping from would crash the process.
  stream.on('error', () => undefined);
  const upload = new Upload({
    client: o.client,
    params: { Bucket: o.bucket, Key: o.key, Body: body, ContentType: 'application/octet-stream' },
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
      if (!stream.destroyed) stream.destroy();
      if (!body.destroyed) body.destroy(new Error('artifact writer aborted'));
      await uploaded.catch(() => undefined);
      // The whole object may have landed before the abort (a small one is a single PutObject).
      if (!o.replacing) await removeObject();
    },
  };
}
