import { ReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import type { AgeIdentity } from '../../crypto/age.ts';
import { findAgeEngine } from '../../crypto/age-cli.ts';
import { BotError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { statfsNearest } from '../../storage/index.ts';
import type { Manifest } from '../../storage/index.ts';
import type { Storage } from '../../storage/index.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { plaintextOf } from './decryption.ts';
import { childOptions, closeWhenGone, yieldCpu } from '../child-pipes.ts';
import { collectOutput } from '../output-tail.ts';

/**
 * The database artifact as pg_restore reads it: a decompressed private temp file (so `-j` works), or `zstd -dc`
 * on stdin when the temp directory has no room (one job). Why and how `-j` is used: parallel-restore.ts.
 */
export type ArchiveInput = 'file' | 'stream';

/** What every reader of a stored backup takes: where the tools and temp space are, how to stop, how to decrypt. */
export interface ArchiveReadOptions {
  manifest: Manifest;
  storage: Storage;
  pgBinDir?: string;
  /** For the decompressed archive (default os.tmpdir()). */
  tempDir?: string;
  /** 'auto' (default) decompresses to a file when tempDir has room, else streams into a single-job pg_restore. */
  input?: ArchiveInput | 'auto';
  signal?: AbortSignal;
  log: Logger;
  now?: () => Date;
  zstdPath?: string;
  /** age identity file (BACKUP_ENCRYPTION_IDENTITY_FILE); read only when the backup is encrypted. */
  identityFile?: string | undefined;
  /** The age CLI that decrypts: undefined finds `age` on PATH (else the library decrypts), null always the library. */
  agePath?: string | null | undefined;
}

export interface PgRestoreRun {
  ok: boolean;
  canceled: boolean;
  stderr: string;
  stdout: string;
  /** "exit code 1", "killed by SIGTERM", … */
  exit: string;
}

export interface PgRestoreIo {
  env: Record<string, string>;
  /** Keep stdout (a listing) in `PgRestoreRun.stdout`. */
  captureStdout?: boolean;
  /** Stream stdout (an SQL script) into this, without ending it: the caller decides how the stream ends. */
  stdoutTo?: Writable;
  partialRead?: boolean;
}

export interface Archive {
  input: ArchiveInput;
  /** Wall time of decompressing into the temp file; 0 when streaming. */
  decompressMs: number;
  /**
   * pg_restore with `args`; the archive is appended as a file (so `-j` works) or fed to stdin. `partialRead`:
   * pg_restore stops early (listings), so zstd dying of a broken pipe is expected, not a failure.
   */
  pgRestore(args: string[], o: PgRestoreIo): Promise<PgRestoreRun>;
  close(): Promise<void>;
}

/** The archive is readable as stored (checksums matched) but does not decompress: the backup itself is bad. */
export class UnreadableArchive extends Error {
  constructor(readonly problem: string) {
    super(problem);
    this.name = 'UnreadableArchive';
  }
}

export interface OpenArchiveOptions {
  manifest: Manifest;
  storage: Storage;
  zstd: string;
  pgRestore: string;
  /** Where the decompressed archive goes (default os.tmpdir()). */
  tempDir?: string | undefined;
  /** 'auto' (default): a file when the temp dir has room for the raw archive + 10 %, else a stream. */
  input?: ArchiveInput | 'auto' | undefined;
  signal?: AbortSignal | undefined;
  /** Decrypts an age-encrypted artifact on the way to zstd (decryption.ts); required for encrypted backups. */
  identity?: AgeIdentity | undefined;
  /** The age CLI for decryption: undefined finds `age` on PATH (else the library decrypts), null always the library. */
  agePath?: string | null | undefined;
  log: Logger;
}

/**
 * `[age -d |] zstd -dc > file` with the file's descriptor handed to zstd as its stdout, and a local unencrypted
 * artifact named to zstd directly: the decompressed bytes never pass through node (they did before, and cost
 * about as much time as zstd itself). Only a decrypted or remote (S3) artifact is fed through node.
 */
async function decompressToFile(o: OpenArchiveOptions, file: string, tempRoot: string): Promise<void> {
  const a = databaseArtifact(o.manifest);
  const stored = await o.storage.openArtifact(o.manifest.target, o.manifest.backupId, a.file);
  // A local file is named to the first tool, which reads it itself; S3 objects arrive as a node stream.
  const storedPath = stored instanceof ReadStream && typeof stored.path === 'string' ? resolve(stored.path) : null;
  // An encrypted artifact goes through the age CLI when it is installed and the identity is a file: the library
  // decrypts at about 100 MB/s on the node thread, the CLI an order of magnitude faster beside it.
  const identityFile = a.encryption ? o.identity?.path : undefined;
  const ageCli = identityFile ? await findAgeEngine(o.agePath) : undefined;
  const ageCmd = ageCli?.kind === 'cli' && identityFile ? { path: ageCli.path, identityFile } : null;
  const toolReadsFile = storedPath !== null && (!a.encryption || ageCmd !== null);
  let out: WriteStream | undefined;
  let source: Readable | undefined;
  try {
    // wx: never follow a planted file; 0600 inside the 0700 mkdtemp directory. Once open, spawn() hands zstd
    // the stream's descriptor itself (a stream with an fd is shared with the child, not piped through node).
    out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    await once(out, 'open').catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code;
      throw new BotError(code === 'ENOSPC' ? 'disk_full' : 'storage_failed', `Could not create the decompressed backup in ${tempRoot} (${code ?? 'error'}).`, {
        cause: err,
      });
    });
    if (toolReadsFile) stored.destroy();
    // The library decrypts in node; a wrong or missing identity fails here, before zstd starts.
    else source = ageCmd ? stored : await plaintextOf(o.manifest, a, stored, o.identity);
    const zstdReadsFile = toolReadsFile && !ageCmd;
    const zstd = yieldCpu(
      execa(o.zstd, zstdReadsFile && storedPath ? ['-dc', '-q', '--', storedPath] : ['-dc', '-q'], {
        ...childOptions(o.signal),
        stdin: zstdReadsFile ? 'ignore' : 'pipe',
        stdout: out,
        stderr: 'pipe',
      }),
    );
    const stderr = collectOutput(zstd.stderr);
    // `age -d -i FILE [INPUT]` writes straight into zstd's stdin (its descriptor handed over, as in tool-pipe.ts).
    // The identity file's path is no secret; its contents never leave the file. No environment of ours reaches age.
    const age =
      ageCmd && zstd.stdin
        ? yieldCpu(
            execa(ageCmd.path, ['-d', '-i', resolve(ageCmd.identityFile), ...(toolReadsFile && storedPath ? [storedPath] : [])], {
              ...childOptions(o.signal),
              env: { PATH: process.env.PATH ?? '' },
              extendEnv: false,
              stdin: toolReadsFile ? 'ignore' : 'pipe',
              stdout: zstd.stdin,
              stderr: 'pipe',
            }),
          )
        : undefined;
    const ageStderr = age ? collectOutput(age.stderr) : undefined;
    // age holds its own copy of zstd's stdin; ours must close too, or zstd never sees end-of-file.
    if (age) closeWhenGone(age, zstd.stdin);
    let decryptError: unknown;
    if (source && source !== stored) source.once('error', (err) => (decryptError ??= err));
    const sink = age ? age.stdin : zstd.stdin;
    const feed = source && sink ? pipeline(source, sink).catch(() => undefined) : Promise.resolve();
    const [z, ageResult] = await Promise.all([zstd, age, feed]);
    if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled while decompressing the backup.');
    const err = stderr.text();
    if (/No space left on device/i.test(err)) {
      throw new BotError(
        'disk_full',
        `The temp directory ${tempRoot} filled up while decompressing the backup; free space there or set another temp directory.`,
      );
    }
    if (ageResult?.failed) {
      throw new UnreadableArchive(
        `the database artifact does not decrypt: ${firstErrorLine(ageStderr?.text() ?? '').replace(/^age:\s*(error:\s*)?/, '') || describeExit(ageResult)}`,
      );
    }
    if (decryptError !== undefined) {
      throw new UnreadableArchive(`the database artifact does not decrypt: ${decryptError instanceof Error ? decryptError.message : String(decryptError)}`);
    }
    if (z.failed) {
      if (/write error|cannot open|permission denied/i.test(err)) {
        throw new BotError('storage_failed', `Could not write the decompressed backup to ${tempRoot}: ${firstErrorLine(err) || describeExit(z)}.`);
      }
      throw new UnreadableArchive(`the database artifact does not decompress: ${firstErrorLine(err) || describeExit(z)}`);
    }
  } finally {
    source?.destroy();
    stored.destroy();
    if (out && !out.closed) {
      const closed = once(out, 'close').catch(() => undefined);
      out.destroy();
      await closed;
    }
  }
}

function databaseArtifact(m: Manifest) {
  const a = m.artifacts.find((x) => x.role === 'database');
  if (!a) throw new BotError('storage_failed', `Backup ${m.backupId} has no database artifact in its manifest, so it cannot be restored.`);
  return a;
}

/** `[age -d |] zstd -dc` of the stored artifact, with stdout left for the caller. */
async function decompressor(o: OpenArchiveOptions) {
  const a = databaseArtifact(o.manifest);
  const stored = await o.storage.openArtifact(o.manifest.target, o.manifest.backupId, a.file);
  // A wrong or missing identity fails here, before zstd or pg_restore start.
  const source = await plaintextOf(o.manifest, a, stored, o.identity);
  const zstd = yieldCpu(execa(o.zstd, ['-dc', '-q'], { ...childOptions(o.signal), stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }));
  const stderr = collectOutput(zstd.stderr);
  // A chunk that fails authentication errors the decrypting stream first; pipeline() then destroys the rest with
  // that error, so the first to report it is the cause. zstd then sees a short stream: the cause is the decryption.
  let first: 'decrypt' | 'zstd' | undefined;
  let decryptError: unknown;
  if (source !== stored) {
    source.once('error', (err) => {
      first ??= 'decrypt';
      if (first === 'decrypt') decryptError = err;
    });
  }
  zstd.stdin.once('error', () => (first ??= 'zstd'));
  // Once the reader stops (a listing read only the TOC), zstd and the source get EPIPE: expected, not news.
  const feed = pipeline(source, zstd.stdin).catch(() => undefined);
  const why = (fallback: string) =>
    decryptError === undefined
      ? `does not decompress: ${fallback}`
      : `does not decrypt: ${decryptError instanceof Error ? decryptError.message : String(decryptError)}`;
  return {
    zstd,
    stderr,
    feed,
    why,
    decryptFailed: () => decryptError !== undefined,
    destroy: () => {
      source.destroy();
      stored.destroy();
    },
  };
}

async function runPgRestore(o: OpenArchiveOptions, args: string[], r: PgRestoreIo & { stdin: 'ignore' | 'pipe' }) {
  // Credentials come from env (libpq variables + PGPASSFILE), never argv.
  const child = yieldCpu(
    execa(o.pgRestore, args, {
      ...childOptions(o.signal),
      env: r.env,
      extendEnv: false,
      stdin: r.stdin,
      stdout: r.captureStdout || r.stdoutTo ? 'pipe' : 'ignore',
      stderr: 'pipe',
      ...(r.captureStdout ? { buffer: { stdout: true, stderr: false } } : {}),
    }),
  );
  const stderr = collectOutput(child.stderr);
  // Not pipeline(): it would end the destination when pg_restore stops, even halfway through a failed run.
  if (r.stdoutTo && child.stdout) {
    child.stdout.pipe(r.stdoutTo, { end: false });
    // The reader went away (psql stopped at an error, maybe before we even started): stop pg_restore rather
    // than let it block forever on a full pipe.
    const out = child.stdout;
    const stop = () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      // Whatever is still buffered is drained into the void, or the stream would never end.
      out.unpipe();
      out.resume();
    };
    if (r.stdoutTo.destroyed || r.stdoutTo.closed) stop();
    else r.stdoutTo.once('close', stop);
  }
  const drained = r.stdoutTo && child.stdout ? finished(child.stdout).catch(() => undefined) : Promise.resolve();
  return { child, stderr, drained };
}

export async function openArchive(o: OpenArchiveOptions): Promise<Archive> {
  const a = databaseArtifact(o.manifest);
  const tempRoot = o.tempDir ?? tmpdir();
  let input: ArchiveInput = o.input === 'file' || o.input === 'stream' ? o.input : 'file';
  if (!o.input || o.input === 'auto') {
    const need = Math.ceil(a.rawBytes * 1.1);
    const { freeBytes } = await statfsNearest(tempRoot);
    input = freeBytes >= need ? 'file' : 'stream';
    if (input === 'stream') o.log.info({ tempRoot, freeBytes, need }, 'not enough temp space for the archive: streaming it into a single pg_restore');
  }

  if (input === 'stream') {
    return {
      input,
      decompressMs: 0,
      async pgRestore(args, r) {
        const d = await decompressor(o);
        const { child, stderr, drained } = await runPgRestore(o, args, { ...r, stdin: 'pipe' });
        const drain = child.stdin ? pipeline(d.zstd.stdout, child.stdin).catch(() => undefined) : Promise.resolve();
        const res = await child;
        await drained;
        // A listing stops after the TOC and a failed restore stops anywhere: the rest of the stream is not needed.
        if (r.partialRead || res.failed) {
          d.zstd.kill('SIGTERM');
          d.destroy();
        }
        const [z] = await Promise.all([d.zstd, d.feed, drain]);
        const canceled = Boolean(o.signal?.aborted || res.isCanceled);
        // zstd checks the frame checksum at the very end: a failure there means pg_restore read bad data.
        if (!r.partialRead && !canceled && (d.decryptFailed() || (!res.failed && z.failed))) {
          throw new UnreadableArchive(`the database artifact ${d.why(firstErrorLine(d.stderr.text()) || describeExit(z))}`);
        }
        return { ok: !res.failed, canceled, stderr: stderr.text(), stdout: String(res.stdout ?? ''), exit: describeExit(res) };
      },
      close: async () => undefined,
    };
  }

  // mkdtemp makes the directory 0700 and the file is 0600: a database's contents must not be readable by others.
  const dir = await mkdtemp(join(tempRoot, 'pgbb-restore-'));
  const file = join(dir, 'database.pgdump');
  const close = () => rm(dir, { recursive: true, force: true });
  try {
    const started = Date.now();
    await decompressToFile(o, file, tempRoot);
    return {
      input,
      decompressMs: Date.now() - started,
      async pgRestore(args, r) {
        const { child, stderr, drained } = await runPgRestore(o, [...args, file], { ...r, stdin: 'ignore' });
        const res = await child;
        await drained;
        const canceled = Boolean(o.signal?.aborted || res.isCanceled);
        return { ok: !res.failed, canceled, stderr: stderr.text(), stdout: String(res.stdout ?? ''), exit: describeExit(res) };
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
