import { createHash } from 'node:crypto';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import type { AgeIdentity } from '../../crypto/age.ts';
import { BotError } from '../../errors.ts';
import { formatCount } from '../../format.ts';
import { errnoCode } from '../../storage/fs-util.ts';
import type { Artifact, Manifest, Storage } from '../../storage/index.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { collectOutput } from '../output-tail.ts';
import { plaintextOf } from './decryption.ts';

/**
 * `pg-backup-bot fetch`: one artifact of a stored backup as the pg tool wrote it (the pg_dump archive, or the
 * globals SQL), for a restore run by hand when the bot cannot run it. One pass over the stored bytes: they are
 * hashed on the way to the decryption and zstd, and the sha256 and sizes are compared with the manifest at the
 * end. The caller must treat its output as garbage unless this resolves (a file is written under a temporary name
 * and renamed only then: fetch-cli.ts).
 */
export interface FetchArtifactOptions {
  manifest: Manifest;
  storage: Storage;
  role: Artifact['role'];
  /** Where the plain bytes go; not ended here (the caller closes it). */
  out: Writable;
  zstd: string;
  identity?: AgeIdentity | undefined;
  signal?: AbortSignal | undefined;
}

export interface FetchedArtifact {
  artifact: Artifact;
  /** Bytes written to `out`: the pg tool's own output, `artifact.rawBytes` of them. */
  bytes: number;
}

export async function fetchArtifact(o: FetchArtifactOptions): Promise<FetchedArtifact> {
  const a = o.manifest.artifacts.find((x) => x.role === o.role);
  if (!a)
    throw new BotError(
      'backup_not_found',
      `Backup ${o.manifest.backupId} has no ${o.role} artifact${o.role === 'globals' ? ' (it was taken without globals)' : ''}.`,
    );
  const name = `${a.file} of backup ${o.manifest.backupId}`;
  const stored = await o.storage.openArtifact(o.manifest.target, o.manifest.backupId, a.file);
  const read = hashing(stored);
  let written = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      written += chunk.length;
      done(null, chunk);
    },
  });
  // A wrong or missing identity fails here, before anything is written.
  const plain = await plaintextOf(o.manifest, a, read.stream, o.identity);
  let decryptError: unknown;
  if (plain !== read.stream) plain.once('error', (err) => (decryptError ??= err));
  // The output's own failure (a full disk, a reader gone) stops every stage before it: age then fails on a closed
  // pipe, zstd too. It is the cause, and is said as such, never as "does not decrypt" (QA: a full disk read as a bad
  // backup or key).
  let outputError: unknown;
  const out = endless(o.out, (err) => (outputError ??= err));
  const stage =
    a.compression === 'none'
      ? await pipeline(plain, counted, out).then(
          () => null,
          (err: unknown) => (err instanceof Error ? err.message : String(err)),
        )
      : await decompress(o, plain, counted, out);
  if (o.signal?.aborted) throw new BotError('canceled', 'The fetch was canceled; what was written is incomplete.');
  if (read.error !== undefined) throw new BotError('storage_failed', `Reading ${name} from ${o.storage.describe()} failed.`, { cause: read.error });
  // The stored bytes are all read when every stage took them; a stage that stopped early left the sum unknown, and is
  // then read again to the end: age's "invalid tag" on a flipped byte is damage, not a wrong key, and is said so.
  const sum = read.done() ? read.sum() : decryptError !== undefined || stage !== null ? await storedSum(o.storage, o.manifest, a.file, o.signal) : null;
  if (sum && (sum.bytes !== a.bytes || sum.sha256 !== a.sha256)) {
    throw new BotError(
      'storage_failed',
      `${name} is corrupted: ${formatCount(sum.bytes)} bytes with sha256 ${sum.sha256.slice(0, 12)}… read, ${formatCount(a.bytes)} bytes with ${a.sha256.slice(0, 12)}… recorded. What was written is not the backup; fetch another backup (\`pg-backup-bot list ${o.manifest.target}\`).`,
    );
  }
  if (outputError !== undefined) {
    const why = (outputError as Error).message ?? String(outputError);
    const intact = sum ? ' The backup itself is intact (its sha256 matches).' : '';
    throw new BotError(
      'storage_failed',
      `${name} could not be written out: ${why}${errnoCode(outputError) === 'ENOSPC' ? ' (no space left where the output goes)' : ''}.${intact} What was written is incomplete.`,
    );
  }
  if (decryptError !== undefined) {
    throw new BotError(
      'decryption_failed',
      `${name} does not decrypt: ${(decryptError as Error).message ?? String(decryptError)}. What was written is not the backup.`,
    );
  }
  if (stage !== null) throw new BotError('storage_failed', `${name} ${stage}. What was written is not the backup.`);
  if (!sum) throw new BotError('storage_failed', `${name} was not read to its end. What was written is not the backup.`);
  if (written !== a.rawBytes) {
    throw new BotError(
      'storage_failed',
      `${name} came out as ${formatCount(written)} bytes, ${formatCount(a.rawBytes)} recorded. What was written is not the backup.`,
    );
  }
  return { artifact: a, bytes: written };
}

/** The stored artifact read whole once more for its sha256 and size; null when it cannot be read. */
async function storedSum(storage: Storage, m: Manifest, file: string, signal?: AbortSignal): Promise<{ bytes: number; sha256: string } | null> {
  try {
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of await storage.openArtifact(m.target, m.backupId, file)) {
      if (signal?.aborted) return null;
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    return { bytes, sha256: hash.digest('hex') };
  } catch {
    return null;
  }
}

/** The stored bytes as they pass: their sha256 and count, whether they were read to the end, and a read error. */
function hashing(stored: Readable) {
  const hash = createHash('sha256');
  let bytes = 0;
  let ended = false;
  const out: { stream: Transform; error: unknown; done(): boolean; sum(): { bytes: number; sha256: string } } = {
    stream: new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
      flush(done) {
        ended = true;
        done();
      },
    }),
    error: undefined,
    done: () => ended,
    sum: () => ({ bytes, sha256: hash.digest('hex') }),
  };
  stored.once('error', (err) => {
    out.error ??= err;
    out.stream.destroy(err);
  });
  // A stage that stops reading (zstd on a bad frame) destroys the chain; the error it gets then is not the storage's.
  stored.pipe(out.stream);
  out.stream.once('close', () => stored.destroy());
  return out;
}

/** `zstd -dc` between the plaintext and the output: null when it went through, else what went wrong. */
async function decompress(o: FetchArtifactOptions, plain: Readable, counted: Transform, output: Writable): Promise<string | null> {
  const zstd = yieldCpu(execa(o.zstd, ['-dc', '-q'], { ...childOptions(o.signal), stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }));
  const stderr = collectOutput(zstd.stderr);
  const into = pipeline(plain, zstd.stdin).catch(() => undefined);
  const out = pipeline(zstd.stdout, counted, output).then(
    () => null,
    (err: unknown) => `could not be written out: ${err instanceof Error ? err.message : String(err)}`,
  );
  const [z, , outcome] = await Promise.all([zstd, into, out]);
  if (z.failed && !z.isCanceled) return `does not decompress: ${firstErrorLine(stderr.text()) || describeExit(z)}`;
  return outcome;
}

/**
 * Writes into `out` without ending it, with its backpressure: stdout must stay open, and a file is closed by its
 * owner after the checks. An error of `out` (a reader that went away) fails the pipeline it is in.
 */
function endless(out: Writable, onError: (err: Error) => void): Writable {
  const w = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (out.write(chunk)) done();
      else out.once('drain', () => done());
    },
  });
  const fail = (err: Error) => {
    onError(err);
    w.destroy(err);
  };
  out.once('error', fail);
  w.once('close', () => out.off('error', fail));
  return w;
}
