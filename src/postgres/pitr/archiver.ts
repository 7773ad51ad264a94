import { counter } from '../stream-counter.ts';
import { createHash } from 'node:crypto';
import { readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import type { AgeEngine } from '../../crypto/age-cli.ts';
import { createEncryptStream } from '../../crypto/age.ts';
import { readdirIfExists } from '../../storage/fs-util.ts';
import { childOptions, yieldCpu } from '../child-pipes.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { collectOutput } from '../output-tail.ts';
import type { Logger } from '../../logger.ts';
import { parseHistory } from './lane.ts';
import { SEGMENT_NAME } from './lsn.ts';
import { LIVE_MS, type ReachSource } from './segment-time.ts';
import type { LocalWalStore, WalEntry } from './wal-store.ts';

/** A completed WAL file in pg_receivewal's directory: a whole segment, or a timeline history file. */
export const COMPLETE_WAL = /^([0-9A-F]{24}|[0-9A-F]{8}\.history)$/;

export interface ArchiveOptions {
  store: LocalWalStore;
  zstd: string;
  level: number;
  /** age recipients: every file is encrypted to them; none (a target that opted out) leaves it compressed only. */
  recipients: string[];
  ageEngine: AgeEngine | undefined;
  now?: () => Date;
  /**
   * How far a completed segment reaches in time (segment-time.ts segmentReach), stored as its `archivedAt`; without
   * it (and for history files), the time it is archived. That time is stored too, as `storedAt`.
   */
  reachedAt?: (name: string, path: string, now: Date) => Promise<{ at: Date; source: ReachSource; storedAt?: Date }>;
  log?: Logger;
}

/**
 * One WAL file into the archive: `zstd` (the bytes of a 16 MB segment that is mostly empty after a switch
 * compress to almost nothing), `age`, sha256 and the size counted on the way, the file committed (fsynced,
 * renamed), then its index entry. Only then is it archived; the caller removes it from the spool after that.
 */
export async function archiveWalFile(path: string, name: string, o: ArchiveOptions): Promise<WalEntry> {
  const encrypted = o.recipients.length > 0;
  const rawBytes = (await stat(path)).size;
  const writer = await o.store.writer(name, encrypted);
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
  const zstd = yieldCpu(execa(o.zstd, ['-c', '-q', `-${o.level}`, path], { ...childOptions(undefined), stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' }));
  const stderr = collectOutput(zstd.stderr);
  try {
    const flow = encrypt ? pipeline(zstd.stdout, encrypt, counting, writer.stream) : pipeline(zstd.stdout, counting, writer.stream);
    await Promise.all([flow, zstd]);
    const res = await zstd;
    if (res.failed) throw new Error(`zstd failed on WAL ${name}: ${firstErrorLine(stderr.text()) || describeExit(res)}`);
    await writer.commit();
  } catch (err) {
    zstd.kill('SIGTERM');
    await writer.abort();
    throw err;
  }
  const now = o.now?.() ?? new Date();
  let failed: unknown;
  const unknown = (err: unknown) => {
    failed = err;
    return { at: now, source: 'unknown' as const, storedAt: now };
  };
  const reached = SEGMENT_NAME.test(name) && o.reachedAt ? await o.reachedAt(name, path, now).catch(unknown) : null;
  // Nothing tells how far it reaches: stamped with the time it is archived, which may claim too much.
  if (reached?.source === 'unknown')
    o.log?.warn({ wal: name, err: failed }, 'could not tell how far this WAL segment of a backlog reaches; stamped with the time it was archived');
  const entry: WalEntry = {
    name,
    file: o.store.fileName(name, encrypted),
    bytes,
    sha256: hash.digest('hex'),
    rawBytes,
    compression: 'zstd',
    encryption: encrypted ? 'age' : 'none',
    archivedAt: (reached?.at ?? now).toISOString(),
    ...(reached ? { reachedBy: reached.source } : {}),
    storedAt: (reached?.storedAt ?? now).toISOString(),
    // Where each older timeline was left: the window follows a promotion along it (lane.ts).
    ...(name.endsWith('.history') ? { forks: parseHistory(await readFile(path, 'utf8')) } : {}),
  };
  await o.store.index(entry);
  return entry;
}

/**
 * Archives every completed WAL file in the spool, oldest first, removing each once archived. A file already in
 * the archive (the process died between its index entry and its removal) is only removed. Stops at the first
 * failure: WAL must stay in order, and the next pass retries from there.
 */
export async function archiveSpool(spool: string, o: ArchiveOptions): Promise<{ archived: WalEntry[]; failure: Error | null }> {
  const ready = (await readdirIfExists(spool)).filter((n) => COMPLETE_WAL.test(n)).sort();
  const archived: WalEntry[] = [];
  let failure: Error | null = null;
  for (const name of ready) {
    try {
      const known = await o.store.entry(name);
      if (!known) archived.push(await archiveWalFile(join(spool, name), name, o));
      await unlink(join(spool, name));
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
      break;
    }
  }
  logBacklog(archived, o.log);
  return { archived, failure };
}

/** One line per pass for a backlog's segments (stamped by what they hold, segment-time.ts), however many. */
function logBacklog(archived: WalEntry[], log: Logger | undefined): void {
  // Behind: reaching further back than a live segment can (its newest sample at or before its end is at most LIVE_MS old).
  const behind = archived.filter((e) => e.storedAt !== undefined && Date.parse(e.storedAt) - Date.parse(e.archivedAt) > LIVE_MS);
  const [first, last] = [behind[0], behind.at(-1)];
  if (!first || !last) return;
  const by: Record<string, number> = {};
  for (const e of behind) by[e.reachedBy as string] = (by[e.reachedBy as string] ?? 0) + 1;
  log?.info(
    { segments: behind.length, first: first.name, last: last.name, reaches: last.archivedAt, by },
    'archived a backlog of WAL the server had moved past',
  );
}
