import { realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { statfsNearest } from '../../storage/index.ts';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import { furthestOffset } from './archive-position.ts';
import { type Archive, type ArchiveInput, databaseArtifact, decryptionMessage, type OpenArchiveOptions, UnreadableArchive } from './archive.ts';
import { decompressToFile } from './decompress-to-file.ts';
import { plaintextOf } from './decryption.ts';
import { makeRestoreTemp } from '../owned-temps.ts';
import { pgRestoreRunOf, runPgRestore } from './pg-restore-child.ts';

/**
 * Opens a stored backup's database archive for pg_restore: decompressed into a private temp file when the temp
 * directory has room for it (see ArchiveInput), else streamed from storage through zstd for every run.
 */
export async function openArchive(o: OpenArchiveOptions): Promise<Archive> {
  const tempRoot = o.tempDir ?? tmpdir();
  const input = await chooseInput(o, tempRoot);
  if (input === 'stream') return streamedArchive(o);

  // 0700, named for this process: one killed outright has its directory removed by the next (orphaned-temps.ts).
  const dir = await makeRestoreTemp(tempRoot, o.log);
  const file = join(dir, 'database.pgdump');
  const close = () => rm(dir, { recursive: true, force: true });
  try {
    const started = Date.now();
    await decompressToFile(o, file, tempRoot);
    const decompressMs = Date.now() - started;
    // /proc names the file by its resolved path.
    const resolved = await realpath(file);
    let running: number | undefined;
    let furthest = 0;
    return {
      input,
      decompressMs,
      async pgRestore(args, r) {
        const { child, stderr, drained } = await runPgRestore(o, [...args, file], { ...r, stdin: 'ignore' });
        running = child.pid;
        const res = await child.finally(() => (running = undefined));
        await drained;
        return pgRestoreRunOf(o, res, stderr);
      },
      // The furthest so far: a second pass (post-data) starts from the top again, and progress never goes back.
      async bytesRead() {
        if (running !== undefined) furthest = Math.max(furthest, await furthestOffset(running, resolved));
        return furthest;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

async function chooseInput(o: OpenArchiveOptions, tempRoot: string): Promise<ArchiveInput> {
  const a = databaseArtifact(o.manifest);
  if (o.input === 'file' || o.input === 'stream') return o.input;
  const need = Math.ceil(a.rawBytes * 1.1);
  const { freeBytes } = await statfsNearest(tempRoot);
  const input = freeBytes >= need ? 'file' : 'stream';
  if (input === 'stream') o.log.info({ tempRoot, freeBytes, need }, 'not enough temp space for the archive: streaming it into a single pg_restore');
  return input;
}

/** Every pg_restore reads its own `[age -d |] zstd -dc` of the stored artifact on stdin. */
function streamedArchive(o: OpenArchiveOptions): Archive {
  let fed = 0;
  let furthest = 0;
  return {
    input: 'stream',
    decompressMs: 0,
    async pgRestore(args, r) {
      const d = await decompressor(o);
      fed = 0;
      const { child, stderr, drained } = await runPgRestore(o, args, { ...r, stdin: 'pipe' }).catch((err: unknown) => {
        d.zstd.kill('SIGTERM');
        d.destroy();
        throw err;
      });
      const drain = child.stdin ? pipeline(d.out, child.stdin).catch(() => undefined) : Promise.resolve();
      d.out.on('data', (chunk: Buffer) => {
        fed += chunk.length;
        if (fed > furthest) furthest = fed;
      });
      const res = await child;
      await drained;
      // A listing stops after the TOC, a failed restore anywhere, and pg_restore -L (a selective restore) exits 0 once
      // it has what it wants: the rest of the stream is not needed. Not read to its end either: a restore into a live
      // database holds its tables' locks until this returns (second reader: minutes on a large archive). What was
      // decompressed zstd checked block by block; the artifact's sha256 was checked before.
      const listed = args.some((a) => a === '-L' || a.startsWith('--use-list'));
      const stoppedEarly = r.partialRead || res.failed || (listed && !(await ended(d.out)));
      if (stoppedEarly) {
        d.zstd.kill('SIGTERM');
        d.destroy();
      }
      const [z] = await Promise.all([d.zstd, d.feed, drain]);
      const run = pgRestoreRunOf(o, res, stderr);
      // zstd checks the frame checksum at the very end: a failure there means pg_restore read bad data.
      if (!stoppedEarly && !run.canceled && (d.decryptFailed() || (!res.failed && z.failed))) {
        throw new UnreadableArchive(`the database artifact ${d.why(firstErrorLine(d.stderr.text()) || describeExit(z))}`);
      }
      return run;
    },
    bytesRead: async () => furthest,
    close: async () => undefined,
  };
}

/** `[age -d |] zstd -dc` of the stored artifact, with stdout left for the caller. */
async function decompressor(o: OpenArchiveOptions) {
  const a = databaseArtifact(o.manifest);
  const stored = await o.storage.openArtifact(o.manifest.target, o.manifest.backupId, a.file);
  // A wrong or missing identity fails here, before zstd or pg_restore start.
  const source = await plaintextOf(o.manifest, a, stored, o.identity);
  const zstd = yieldCpu(execa(o.zstd, ['-dc', '-q'], { ...childOptions(o.signal), stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' }));
  // Piped at once into a stream of ours, which the caller reads once pg_restore has started. zstd's own stdout is not
  // left unread meanwhile: execa (buffer: false) resumes a stdout nobody reads after a tick, and Node resumes it when
  // zstd exits, and what zstd wrote went nowhere (a small archive reached pg_restore empty or cut: "input file is too
  // short (read 0, expected 5)", a flaky checklist test). Backpressure holds zstd as before.
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  zstd.stdout.pipe(out);
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
  const why = (fallback: string) => (decryptError === undefined ? `does not decompress: ${fallback}` : `does not decrypt: ${decryptionMessage(decryptError)}`);
  return {
    zstd,
    out,
    stderr,
    feed,
    why,
    decryptFailed: () => decryptError !== undefined,
    destroy: () => {
      source.destroy();
      stored.destroy();
      // What zstd still writes (it is being stopped) drains into the void, not into a destroyed stream.
      zstd.stdout.unpipe(out);
      zstd.stdout.resume();
      out.destroy();
    },
  };
}

/** Whether `s` has delivered its end (zstd wrote all of its output and it was read), waiting a moment for it. */
async function ended(s: { readableEnded: boolean; once(event: 'end', f: () => void): unknown }): Promise<boolean> {
  if (s.readableEnded) return true;
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), 50);
    s.once('end', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
