import { Transform, type Readable } from 'node:stream';
import { tocEntryCount } from '../failures.ts';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { BotError } from '../../errors.ts';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { collectOutput } from '../output-tail.ts';

/**
 * Reads a stored custom-format artifact back before its manifest is written, so an unreadable backup is never
 * reported good. An encrypted artifact arrives here already decrypted (backup-encryption.ts says how a worker
 * without a configured secret key can read it back).
 * - 'list': `zstd -dc | pg_restore --list`. pg_restore reads the header and the TOC at the front and stops,
 *   so this costs milliseconds; it does not read the data (pg_dump's exit status vouches for that).
 * - 'full': `zstd -dc | pg_restore -f /dev/null` reads every data block too, so a truncated stream fails;
 *   it also counts the raw bytes. About a third of the dump's own time.
 */
export type VerifyMode = 'list' | 'full';

export interface VerifyResult {
  /** From the listing's header; 'list' mode only. */
  tocEntries: number | null;
  /** Decompressed size, known in 'full' mode only. */
  rawBytes: number | null;
}

export async function verifyArtifact(o: {
  source: Readable;
  zstd: string;
  pgRestore: string;
  mode: VerifyMode;
  signal?: AbortSignal | undefined;
}): Promise<VerifyResult> {
  const common = childOptions(o.signal);
  const zstd = yieldCpu(execa(o.zstd, ['-dc'], { ...common, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }));
  const zstdErr = collectOutput(zstd.stderr);
  // --list needs no connection: pg_restore only parses the archive.
  const restore = yieldCpu(
    execa(o.pgRestore, o.mode === 'list' ? ['--list'] : ['-f', '/dev/null'], {
      ...common,
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
    }),
  );
  const listing = collectOutput(restore.stdout, 8 * 1024);
  const restoreErr = collectOutput(restore.stderr);
  let rawBytes = 0;
  const feed = pipeline(o.source, zstd.stdin).catch(() => undefined);
  const drain = pipeline(
    zstd.stdout,
    new Transform({
      transform(chunk: Buffer, _e, done) {
        rawBytes += chunk.length;
        done(null, chunk);
      },
    }),
    restore.stdin,
  ).catch(() => undefined);
  const restoreResult = await restore;
  // pg_restore --list stops after the TOC; the rest of the stream is not needed.
  if (o.mode === 'list') {
    zstd.kill('SIGTERM');
    o.source.destroy();
  }
  const [zstdResult] = await Promise.all([zstd, feed, drain]);
  const fail = (what: string, stderr: string) =>
    new BotError('pg_dump_failed', `The backup was written but could not be read back (${what}); it was not kept.`, {
      detail: stderr.trim() || what,
    });
  if (o.signal?.aborted) throw new BotError('canceled', 'The backup was canceled before it finished; nothing was kept.');
  if (restoreResult.failed) throw fail('pg_restore could not read the archive', restoreErr.text());
  if (o.mode === 'full' && zstdResult.failed) throw fail('zstd could not decompress it', zstdErr.text());
  const tocEntries = o.mode === 'list' ? tocEntryCount(listing.text()) : null;
  if (o.mode === 'list' && !tocEntries) throw fail('the archive lists no entries', restoreErr.text());
  return { tocEntries, rawBytes: o.mode === 'full' ? rawBytes : null };
}
