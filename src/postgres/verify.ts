import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { BotError } from '../errors.ts';
import { collectOutput } from './output-tail.ts';

/**
 * Reads a custom-format archive back before its manifest is written, so an unreadable backup is never reported good.
 * - 'list': `zstd -dc | pg_restore --list`. pg_restore reads the header and the TOC at the front and stops,
 *   so this costs milliseconds; it does not read the data (pg_dump's exit status vouches for that).
 * - 'full': `zstd -dc | pg_restore -f /dev/null` reads every data block too, so a truncated stream fails;
 *   it also counts the raw bytes. About a third of the dump's own time.
 *
 * Unencrypted backups are read back from storage once stored (`verifyArtifact`). Encrypted ones cannot be: the
 * workers that take backups hold no secret key, by design. For those the verifier is fed while the backup is
 * written (`startVerifier` as the pipe's tap): it reads the very compressed bytes that go into age, chunk for
 * chunk, so the same check runs on the same bytes; age then adds authenticated encryption whose correctness is
 * the library's (and is proven against the age CLI in test/crypto), the stored bytes are hashed as written, and
 * the stored file is read back as far as its age header (dump.ts).
 */
export type VerifyMode = 'list' | 'full';

export interface VerifyResult {
  /** From the listing's header; 'list' mode only. */
  tocEntries: number | null;
  /** Decompressed size, known in 'full' mode only. */
  rawBytes: number | null;
}

export interface VerifyOptions {
  zstd: string;
  pgRestore: string;
  mode: VerifyMode;
  signal?: AbortSignal | undefined;
}

export interface Verifier {
  /** The compressed archive goes in here; in 'list' mode it stops reading after the TOC (writes then fail: expected). */
  input: Writable;
  /** Settles once pg_restore has judged the archive; never rejects before then. */
  result: Promise<VerifyResult>;
  /** Stops both processes (the backup failed anyway). */
  abort(): void;
}

export function startVerifier(o: VerifyOptions): Verifier {
  const common = { ...(o.signal ? { cancelSignal: o.signal } : {}), forceKillAfterDelay: 5_000, reject: false, buffer: false } as const;
  const zstd = execa(o.zstd, ['-dc'], { ...common, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
  const zstdErr = collectOutput(zstd.stderr);
  // --list needs no connection: pg_restore only parses the archive.
  const restore = execa(o.pgRestore, o.mode === 'list' ? ['--list'] : ['-f', '/dev/null'], {
    ...common,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const listing = collectOutput(restore.stdout, 8 * 1024);
  const restoreErr = collectOutput(restore.stderr);
  // Whoever feeds the input may meet a closed pipe once pg_restore has what it needs: never an unhandled error.
  zstd.stdin.on('error', () => undefined);
  let rawBytes = 0;
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
  const result = (async (): Promise<VerifyResult> => {
    const restoreResult = await restore;
    // pg_restore --list stops after the TOC; the rest of the stream is not needed.
    if (o.mode === 'list') zstd.kill('SIGTERM');
    const [zstdResult] = await Promise.all([zstd, drain]);
    const fail = (what: string, stderr: string) =>
      new BotError('pg_dump_failed', `The backup was written but could not be read back (${what}); it was not kept.`, {
        detail: stderr.trim() || what,
      });
    if (o.signal?.aborted) throw new BotError('canceled', 'The backup was canceled before it finished; nothing was kept.');
    if (restoreResult.failed) throw fail('pg_restore could not read the archive', restoreErr.text());
    if (o.mode === 'full' && zstdResult.failed) throw fail('zstd could not decompress it', zstdErr.text());
    const toc = /TOC Entries:\s*(\d+)/.exec(listing.text());
    const tocEntries = o.mode === 'list' ? Number(toc?.[1] ?? 0) : null;
    if (o.mode === 'list' && !tocEntries) throw fail('the archive lists no entries', restoreErr.text());
    return { tocEntries, rawBytes: o.mode === 'full' ? rawBytes : null };
  })();
  // It may fail while the backup is still being written; the caller awaits it after the dump.
  result.catch(() => undefined);
  return {
    input: zstd.stdin,
    result,
    abort() {
      zstd.kill('SIGTERM');
      restore.kill('SIGTERM');
    },
  };
}

/** Reads a stored (unencrypted) artifact back through a verifier. */
export async function verifyArtifact(o: VerifyOptions & { source: Readable }): Promise<VerifyResult> {
  const v = startVerifier(o);
  const feed = pipeline(o.source, v.input).catch(() => undefined);
  try {
    return await v.result;
  } finally {
    o.source.destroy();
    await feed;
  }
}
