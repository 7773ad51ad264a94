import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { BotError, isBotError } from '../../errors.ts';
import { openFileWriter } from '../../storage/file-writer.ts';
import { storageError, writeFileAtomically } from '../../storage/fs-util.ts';
import { mapLimit } from '../../storage/s3-objects.ts';
import type { ArtifactWriter } from '../../storage/types.ts';
import { streamVerified } from '../../storage/verified-stream.ts';
import { type BaseBackup, BaseBackupSchema } from './base-backup.ts';
import type { S3PitrStore } from './s3-pitr-store.ts';
import { archivedBases } from './wal-index.ts';
import { PartialWalStore } from './partial-store.ts';
import { LocalWalStore, type WalEntry } from './wal-store.ts';
import { chooseRecovery } from './pitr-restore.ts';
import { remoteWindowWal } from './s3-archive.ts';
import { recoverableWindow, segmentOf, windowAlong } from './window.ts';

/**
 * `restore-pitr --from=s3`: the worker's disk is gone, the archive's copy in S3 is what is left. The base backup that
 * ended before the time and the WAL from its start to past the time are downloaded into BACKUP_DIR, in the layout the
 * worker writes, each file checked against the sha256 it was archived with; from there the restore is the local one
 * (window checked, restore_command reading BACKUP_DIR), so the recovering server needs no S3 credentials of its own.
 * Files already on disk are not downloaded again.
 */

export interface OffsiteFetch {
  base: BaseBackup;
  segments: number;
  bytes: number;
}

/** WAL this far past the time is fetched too: recovery stops at the first commit after the time, which it must see. */
const PAST_TIME_MS = 60_000;
/** Segments fetched after the first one archived past the time (a margin: that one may end just after it). */
const EXTRA_SEGMENTS = 1;

const canceled = () => new BotError('canceled', 'the download from S3 was canceled.');

/** One file from S3, checked; a cancel (Ctrl-C) ends the download at once, its `.partial` removed. */
async function download(
  source: Readable,
  writer: ArtifactWriter,
  expected: { bytes: number; sha256: string },
  what: string,
  where: string,
  signal?: AbortSignal,
): Promise<void> {
  const mismatch = (how: string) => new BotError('storage_failed', `${what} in ${where} ${how}: the copy is damaged.`);
  const stop = () => source.destroy(canceled());
  signal?.addEventListener('abort', stop, { once: true });
  try {
    if (signal?.aborted) throw canceled();
    await streamVerified(source, writer.stream, expected, 'its record says', mismatch);
    await writer.commit();
  } catch (err) {
    source.destroy();
    await writer.abort();
    throw signal?.aborted ? canceled() : err;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

/** The sha256 and size of an object as read now. */
async function digest(source: Readable): Promise<string> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return `${bytes}:${hash.digest('hex')}`;
}

/**
 * A segment that did not match its record, read twice more: the same bytes both times, and not the recorded ones,
 * is damage in the bucket, marked there (s3-pitr-store.ts markDamaged) so the window ends before it and `wal-gap`
 * pages (QA: the test failed on it while /backup health still said "no segment missing"). Reads that differ are a
 * transfer's fault: the error goes on as it was.
 */
async function markIfDamaged(remote: S3PitrStore, e: WalEntry, err: BotError): Promise<BotError> {
  const reads = await Promise.all([remote.openWal(e).then(digest), remote.openWal(e).then(digest)]).catch(() => null);
  if (!reads || reads[0] !== reads[1] || reads[0] === `${e.bytes}:${e.sha256}`) return err;
  const marked = await remote.markDamaged(e.name, err.userMessage).then(
    () =>
      ' Read three times alike, it was marked damaged in the bucket: the recoverable window ends before it until a base backup taken after it opens a new one, and health pages the gap.',
    () => '',
  );
  return new BotError(err.code, `${err.userMessage}${marked}`, { cause: err });
}

/** How long after a moment the bot may stamp a base backup finished whose end segment was archived by then. */
const FINISH_STAMP_MARGIN_MS = 60_000;

/**
 * The base backup in S3 to recover from: the one already chosen from the window (`baseId`, the PITR test), else the
 * newest that finished by `at`, else one that finished within a minute after it: the window may start at its end
 * segment's archiving, a moment before the bot stamped it finished (window.ts), and the recovery's own check of the
 * time against the fetched archive (pitr-restore.ts chooseRecovery) refuses a time it does not reach. Refused with what
 * S3 holds when there is none.
 */
function chooseRemoteBase(bases: BaseBackup[], at: Date, where: string, baseId?: string): BaseBackup {
  const chosen = baseId === undefined ? undefined : bases.find((b) => b.id === baseId);
  const base =
    chosen ??
    bases.filter((b) => Date.parse(b.finishedAt) <= at.getTime()).at(-1) ??
    bases.find((b) => Date.parse(b.finishedAt) - at.getTime() <= FINISH_STAMP_MARGIN_MS);
  if (base) return base;
  const oldest = bases[0];
  throw new BotError(
    'backup_not_found',
    oldest
      ? `No base backup in ${where} finished by ${at.toISOString()}: the oldest there finished at ${oldest.finishedAt}.`
      : `There is no base backup in ${where}: nothing can be recovered from it.`,
  );
}

/**
 * The base backup the bucket's window recovers `at` from (pitr-restore.ts chooseRecovery on s3-archive.ts
 * remoteWindowWal): after a promotion the newest one by time may be an old primary's, on a branch the window does not
 * follow (review). Undefined when the window cannot tell (then the newest by time, as before; the recovery's own check
 * against the fetched archive refuses what it does not reach).
 */
async function windowBase(remote: S3PitrStore, at: Date, o: { latest: boolean; along?: number | undefined }): Promise<string | undefined> {
  try {
    const { bases, wal } = await remoteWindowWal(remote);
    const w = o.along === undefined ? recoverableWindow(bases, wal) : windowAlong(bases, wal, o.along);
    const when = o.latest ? w?.to : at;
    return when ? chooseRecovery(bases, wal, when, [], new Date(), o.along).base.id : undefined;
  } catch {
    return undefined;
  }
}

export async function fetchFromOffsite(o: {
  root: string;
  remote: S3PitrStore;
  at: Date;
  baseId?: string | undefined;
  /** restore-pitr: the base backup is chosen from the bucket's window, along its timelines (`along`: --timeline). */
  fromWindow?: { latest: boolean; along?: number | undefined };
  /** S3 as the primary store: a segment read twice more alike, not matching its record, is marked damaged there. */
  markDamaged?: boolean;
  signal?: AbortSignal | undefined;
}): Promise<OffsiteFetch> {
  const target = o.remote.target;
  const where = o.remote.describe();
  const baseId = o.baseId ?? (o.fromWindow ? await windowBase(o.remote, o.at, o.fromWindow) : undefined);
  const base = chooseRemoteBase(await o.remote.listBases(), o.at, where, baseId);
  let bytes = 0;
  if (!(await archivedBases(o.root, target)).some((b) => b.id === base.id)) {
    const dir = join(o.root, target, '_base', base.id);
    await mkdir(dir, { recursive: true, mode: 0o750 });
    const file = join(dir, base.file);
    const writer = await openFileWriter(`${file}.partial`, file, (err, action) => storageError(err, dir, `${action} the base backup`));
    await download(await o.remote.openBase(base), writer, base, `Base backup ${base.id}`, where, o.signal);
    await writeFileAtomically(join(dir, 'base.json'), `${JSON.stringify(BaseBackupSchema.parse(base), null, 2)}\n`);
    bytes += base.bytes;
  }
  const local = new LocalWalStore(o.root, target);
  const start = segmentOf(base.startLsn, base.timeline).slice(8);
  // History files all (they are tiny and recovery asks for them); segments from the base's start, by position.
  const listed = (await o.remote.listWal()).filter((w) => w.file !== null && (w.name.endsWith('.history') || w.name.slice(8) >= start));
  const wanted: WalEntry[] = [];
  let past = 0;
  for (let i = 0; i < listed.length && past <= EXTRA_SEGMENTS; i += 8) {
    const entries = await mapLimit(listed.slice(i, i + 8), 8, (w) => o.remote.walEntry(w.name));
    for (const [k, e] of entries.entries()) {
      if (!e || past > EXTRA_SEGMENTS) continue;
      if (e.bytes !== listed[i + k]?.fileBytes) continue; // a copy cut short: left out, so the window shows the gap
      wanted.push(e);
      if (!e.name.endsWith('.history') && Date.parse(e.archivedAt) > o.at.getTime() + PAST_TIME_MS) past++;
    }
  }
  const fresh = await mapLimit(wanted, 4, async (e) => {
    if (await local.entry(e.name)) return 0;
    if (o.signal?.aborted) throw canceled();
    await download(await o.remote.openWal(e), await local.writer(e.name, e.encryption === 'age'), e, `WAL ${e.name}`, where, o.signal).catch(
      async (err: unknown) => {
        throw o.markDamaged && isBotError(err) && err.code === 'storage_failed' && !o.signal?.aborted ? await markIfDamaged(o.remote, e, err) : err;
      },
    );
    await local.index(e);
    return e.bytes;
  });
  // S3_MODE=primary: the snapshot of a segment not in the bucket whole (offsite-partials.ts), which wal-fetch serves.
  const whole = new Set(listed.map((w) => w.name));
  const partials = new PartialWalStore(o.root, target);
  // Only when the time needs the WAL to its end (no segment was left out after it): else it would sit past a gap.
  const toTheEnd = past <= EXTRA_SEGMENTS;
  for (const p of toTheEnd ? (await o.remote.listPartials()).filter((x) => !whole.has(x.name) && x.name.slice(8) >= start) : []) {
    if ((await partials.entry(p.name))?.file === p.file) continue;
    await download(await o.remote.openPartial(p), await partials.writer(p.file), p, `Partial WAL ${p.name}`, where, o.signal);
    await partials.index(p);
    fresh.push(p.bytes);
  }
  return { base, segments: fresh.filter((b) => b > 0).length, bytes: bytes + fresh.reduce((a, b) => a + b, 0) };
}
