import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { createEncryptStream } from '../../crypto/age.ts';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import { counter } from '../stream-counter.ts';
import type { ArchiveOptions } from './archiver.ts';
import { formatLsn, SEGMENT_BYTES, SEGMENT_NAME, segmentStartLsn } from './lsn.ts';
import type { PartialEntry, PartialWalStore } from './partial-store.ts';

/** pg_receivewal's name for the segment it is writing. */
export const PARTIAL_WAL = /^([0-9A-F]{24})\.partial$/;

/**
 * The partial segment pg_receivewal is writing: the newest `.partial` by name (timeline, then segment). At a timeline
 * switch it leaves the old timeline's last segment there as `.partial` for good (QA, a promotion: readdir listed that
 * one first, and the new timeline's segments were never snapshotted).
 */
export const receiving = (spooled: readonly string[]): string | undefined =>
  spooled
    .filter((n) => PARTIAL_WAL.test(n))
    .sort()
    .at(-1);
/** Whether the spool holds completed segments older than the one being written (`name`, its `.partial`): not archived yet. */
export const backlogBefore = (spooled: readonly string[], name: string): boolean => spooled.some((n) => SEGMENT_NAME.test(n) && n < name.slice(0, 24));
const PAGE = 8192;

/** Up to `bytes` of pg_receivewal's `.partial` file in a segment-sized buffer, or null when it is gone (completed and renamed meanwhile). */
async function readSpooled(path: string, bytes: number): Promise<{ buf: Buffer; bytesRead: number } | null> {
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (!fh) return null;
  try {
    const buf = Buffer.alloc(SEGMENT_BYTES);
    return { buf, bytesRead: (await fh.read(buf, 0, bytes, 0)).bytesRead };
  } finally {
    await fh.close();
  }
}

/** The first `walBytes` of the file, or null when it is gone. */
async function readHead(path: string, walBytes: number): Promise<Buffer | null> {
  const read = await readSpooled(path, walBytes);
  if (read && read.bytesRead < walBytes)
    throw new Error(`the partial WAL file ${path} holds ${read.bytesRead} bytes, fewer than the ${walBytes} the server says were flushed`);
  return read?.buf ?? null;
}

/**
 * One snapshot of the segment being received, holding `walBytes` of WAL: the receiver had flushed (and told the
 * server so) up to `walEnd` at `coversAt`, so the file holds at least that much. Only those bytes are stored, the
 * rest of the 16 MB zeroed as pg_receivewal pads it, so the snapshot never holds a page being written at that
 * moment; PostgreSQL replays it under the segment's own name and stops at its end. Compressed, encrypted, hashed,
 * committed, then indexed in place of the previous snapshot of that segment.
 */
export async function snapshotPartial(
  path: string,
  name: string,
  flushed: bigint,
  coversAt: Date,
  o: ArchiveOptions & { partials: PartialWalStore },
): Promise<PartialEntry | null> {
  const walBytes = Number(flushed - segmentStartLsn(name));
  if (walBytes <= 0 || walBytes >= SEGMENT_BYTES) return null;
  const segment = await readHead(path, walBytes);
  if (!segment) return null;
  // The page holding the last byte claimed must be a WAL page of this segment (the same magic as its first page):
  // a flushed position that is not in this file (another receiver's) must never be claimed as archived.
  const magic = segment.readUInt16LE(0);
  const last = Math.floor((walBytes - 1) / PAGE) * PAGE;
  if (magic === 0 || segment.readUInt16LE(last) !== magic) {
    throw new Error(`the partial WAL file ${name} does not hold WAL up to ${formatLsn(flushed)}, where the server says the receiver flushed`);
  }
  const encrypted = o.recipients.length > 0;
  const file = o.partials.fileName(name, walBytes, encrypted);
  const writer = await o.partials.writer(file);
  // The encrypting stream is made before zstd starts: zstd's stdout must be piped at once. Made after (the age
  // library's is asynchronous), what zstd wrote meanwhile was dropped, as execa resumes a stdout nobody reads, and
  // a WAL file missing its head was hashed and archived as good (archiver-engines.test.ts). After the file: an age
  // CLI started before a failure to open it would wait on its stdin for good.
  const encrypt = encrypted
    ? await createEncryptStream(o.recipients, o.ageEngine).catch(async (err: unknown) => {
        await writer.abort();
        throw err;
      })
    : undefined;
  const hash = createHash('sha256');
  let bytes = 0;
  const counting = counter((n) => (bytes += n), hash);
  const zstd = yieldCpu(execa(o.zstd, ['-c', '-q', `-${o.level}`], { ...childOptions(undefined), input: segment, stdout: 'pipe', stderr: 'pipe' }));
  const stderr = collectOutput(zstd.stderr);
  try {
    const flow = encrypt ? pipeline(zstd.stdout, encrypt, counting, writer.stream) : pipeline(zstd.stdout, counting, writer.stream);
    const [, res] = await Promise.all([flow, zstd]);
    if (res.failed) throw new Error(`zstd failed on partial WAL ${name}: ${firstErrorLine(stderr.text()) || describeExit(res)}`);
    await writer.commit();
  } catch (err) {
    zstd.kill('SIGTERM');
    await writer.abort();
    throw err;
  }
  const entry: PartialEntry = {
    name,
    file,
    bytes,
    sha256: hash.digest('hex'),
    rawBytes: SEGMENT_BYTES,
    compression: 'zstd',
    encryption: encrypted ? 'age' : 'none',
    archivedAt: (o.now?.() ?? new Date()).toISOString(),
    partial: true,
    walBytes,
    walEnd: formatLsn(flushed),
    coversAt: coversAt.toISOString(),
  };
  await o.partials.index(entry);
  return entry;
}

/**
 * Where the WAL pg_receivewal wrote into its `.partial` file ends: after its last byte that is not zero (the file is
 * zeros beyond what was received, and with --synchronous on disk as received), rounded up to WAL's 8-byte alignment;
 * null when the file is gone or holds nothing. Never past a record the file does not hold whole: a record's zero
 * tail is zeros stored either way, and a sample's position (a record's end) beyond it is never read as covered.
 */
async function writtenEnd(path: string, name: string): Promise<bigint | null> {
  const read = await readSpooled(path, SEGMENT_BYTES);
  if (!read) return null;
  let last = read.bytesRead - 1;
  while (last >= 0 && read.buf[last] === 0) last--;
  return last < 0 ? null : segmentStartLsn(name) + BigInt(Math.ceil((last + 1) / 8) * 8);
}

/**
 * The segment being received, stored as far as pg_receivewal wrote it, when the server can no longer be asked how far
 * it flushed (a crash): its time is the newest sample the server had written nothing beyond it by (`coveredAt`), so
 * the window never claims more; `latest` still recovers every commit it holds. Null when it holds nothing past
 * `after` (what is archived already) or no sample dates it.
 */
export async function snapshotWritten(
  path: string,
  name: string,
  o: ArchiveOptions & { partials: PartialWalStore; after: bigint; coveredAt: (lsn: bigint) => Date | null },
): Promise<PartialEntry | null> {
  const end = await writtenEnd(path, name);
  const covers = end !== null && end > o.after ? o.coveredAt(end) : null;
  return end !== null && covers ? snapshotPartial(path, name, end, covers, o) : null;
}
