import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BotError } from '../errors.ts';
import type { ArtifactWriter } from './types.ts';

/**
 * Streams `source` into `destination`, counting and hashing on the way; fails (with `mismatch(what)`) as soon as
 * the source is longer than `expected.bytes`, and at the end when its size or sha256 differ. A copy of a stored
 * file is called good only when it carries exactly the bytes that were recorded for it.
 */
export async function streamVerified(
  source: Readable,
  destination: Writable,
  expected: { bytes: number; sha256: string },
  /** Who recorded the expected figures, for the sentences: `the manifest records`, `its index entry records`. */
  recorded: string,
  mismatch: (what: string) => BotError,
  signal?: AbortSignal,
): Promise<void> {
  const hash = createHash('sha256');
  let bytes = 0;
  const verify = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > expected.bytes) return done(mismatch(`has more than the ${expected.bytes} bytes ${recorded}`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(source, verify, destination, ...(signal ? [{ signal }] : []));
  if (bytes !== expected.bytes) throw mismatch(`has ${bytes} bytes, not the ${expected.bytes} ${recorded}`);
  const sha256 = hash.digest('hex');
  if (sha256 !== expected.sha256) throw mismatch(`has sha256 ${sha256.slice(0, 12)}…, not ${expected.sha256.slice(0, 12)}… as ${recorded}`);
}

/**
 * A local file into `writer`, committed only when its bytes are the ones recorded (`streamVerified`, "its record
 * says"); aborted otherwise, so a file that rotted on disk is never stored as good.
 */
export async function commitFileVerified(
  path: string,
  expected: { bytes: number; sha256: string },
  writer: ArtifactWriter,
  mismatch: (what: string) => BotError,
): Promise<void> {
  try {
    await streamVerified(createReadStream(path), writer.stream, expected, 'its record says', mismatch);
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
