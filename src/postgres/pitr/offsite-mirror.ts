import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BotError } from '../../errors.ts';
import type { ArtifactWriter } from '../../storage/types.ts';
import { errnoCode, fsyncDir } from '../../storage/fs-util.ts';
import { commitFileVerified } from '../../storage/verified-stream.ts';
import type { BaseBackup } from './base-backup.ts';
import { SEGMENT_NAME } from './lsn.ts';
import { mirrorPartials } from './offsite-partials.ts';
import { type PartialEntry, PartialWalStore } from './partial-store.ts';
import { rememberRemoteEntry } from './s3-archive.ts';
import type { S3PitrStore } from './s3-pitr-store.ts';
import { archivedBases, archivedWal } from './wal-index.ts';
import type { LocalWalStore, WalEntry } from './wal-store.ts';

/**
 * The off-site half of the PITR archive (S3_MODE=copy): every segment and base backup archived on the worker's disk
 * is copied to the bucket, file first and its `.json` last, each file hashed on the way and compared with the sha256
 * it was archived with, so a file that rotted on disk is not copied as good. Deletions are not mirrored: retention
 * deletes in both places (pitr-retention.ts), and a wiped local disk never empties the bucket.
 *
 * With S3 as the primary store (S3_MODE=primary) the worker's disk is a spool: the same copy, and then the local
 * file goes — its index entry first, then the file, so the local index names only what is still on disk — for every
 * segment and base backup the bucket holds (copied now, or found there: a pass that died between the copy and the
 * removal). What is not in the bucket is never removed; the receiver's `.partial` is not in `_wal/` at all.
 * The partial segment's newest snapshot is uploaded after the whole segments (offsite-partials.ts).
 */

export interface MirrorPass {
  copiedWal: number;
  copiedBases: number;
  /** The newest segment in the bucket after this pass, and how many archived on disk are not there yet. */
  newestWal: string | null;
  /** When the newest segment reached the bucket: copied in this process (then), or as the first listing said. */
  newestWalAt: Date | null;
  pendingWal: number;
  pendingBases: number;
  /** S3_MODE=primary: local copies removed in this pass, their files being in the bucket. */
  spoolRemoved: number;
  /** S3_MODE=primary: where the newest partial snapshot in the bucket reaches (offsite-partials.ts), if any. */
  partialEnd: string | null;
  failure: Error | null;
}

/** What is known to be in the bucket: read by one listing at the first pass, then kept up to date by the copies. */
export interface MirrorMemory {
  wal: Set<string> | null;
  /** When each segment found at the first listing reached the bucket (its entry's LastModified). */
  indexedAt?: Map<string, Date>;
  bases: Set<string> | null;
  partials: Map<string, PartialEntry> | null;
}

export const newMirrorMemory = (): MirrorMemory => ({ wal: null, bases: null, partials: null });

/** A local file into `writer`, committed only when its bytes are the ones archived (size and sha256). */
const copyChecked = (path: string, expected: { bytes: number; sha256: string }, writer: ArtifactWriter, what: string) =>
  commitFileVerified(path, expected, writer, (how) => new BotError('storage_failed', `${what} on the worker's disk ${how}: it was not copied off-site.`));

/** One pass, which never throws (its failure is in `failure`): the base backups first (few, and a copy is useless without them), then the segments, oldest first. */
export async function mirrorOnce(o: {
  root: string;
  local: LocalWalStore;
  remote: S3PitrStore;
  memory: MirrorMemory;
  signal?: AbortSignal;
  /** S3_MODE=primary: remove each local copy once its file is in the bucket. */
  primary?: boolean;
}): Promise<MirrorPass> {
  const m = o.memory;
  const pass: MirrorPass = {
    copiedWal: 0,
    copiedBases: 0,
    newestWal: null,
    newestWalAt: null,
    pendingWal: 0,
    pendingBases: 0,
    spoolRemoved: 0,
    partialEnd: null,
    failure: null,
  };
  const failed = (err: unknown, pending: { wal: number; bases: number }): MirrorPass => ({
    ...pass,
    pendingWal: pending.wal,
    pendingBases: pending.bases,
    failure: err instanceof Error ? err : new Error(String(err)),
  });
  // The disk's archive (an unreadable index is a failed pass, said and retried like S3's), then what S3 holds.
  let bases: BaseBackup[];
  let wal: WalEntry[];
  try {
    [bases, wal] = await Promise.all([archivedBases(o.root, o.remote.target), archivedWal(o.local)]);
  } catch (err) {
    return failed(err, { wal: 0, bases: 0 });
  }
  try {
    m.bases ??= new Set((await o.remote.listBases()).map((b) => b.id));
    if (!m.wal) {
      const listed = (await o.remote.listWal()).filter((w) => w.file !== null);
      m.wal = new Set(listed.map((w) => w.name));
      m.indexedAt = new Map(listed.map((w) => [w.name, w.indexedAt]));
    }
  } catch (err) {
    return failed(err, { wal: wal.length, bases: bases.length });
  }
  const missingBases = bases.filter((b) => !m.bases?.has(b.id));
  const missingWal = wal.filter((e) => !m.wal?.has(e.name));
  // In the bucket already (memory says so), yet still on disk: a pass that died before removing them.
  const spoolBases = o.primary ? bases.filter((b) => m.bases?.has(b.id)) : [];
  const spoolWal = o.primary ? wal.filter((e) => m.wal?.has(e.name)) : [];
  try {
    for (const b of spoolBases) pass.spoolRemoved += await removeLocalBase(o.root, b);
    for (const e of spoolWal) pass.spoolRemoved += await removeLocalWal(o.local, e);
    for (const b of missingBases) {
      if (o.signal?.aborted) break;
      await copyBase(o.root, o.remote, b);
      m.bases.add(b.id);
      pass.copiedBases++;
      if (o.primary) pass.spoolRemoved += await removeLocalBase(o.root, b);
    }
    for (const e of missingWal) {
      if (o.signal?.aborted) break;
      await copyWal(o.local, o.remote, e);
      m.wal.add(e.name);
      m.indexedAt?.set(e.name, new Date());
      rememberRemoteEntry(o.remote, e);
      pass.copiedWal++;
      if (o.primary) pass.spoolRemoved += await removeLocalWal(o.local, e);
    }
    // After every whole segment is up (a failure above skips this): the snapshot of the one being written.
    if (o.primary && !o.signal?.aborted) {
      const partials = new PartialWalStore(o.root, o.remote.target);
      pass.partialEnd = (await mirrorPartials({ local: partials, remote: o.remote, wholeInBucket: m.wal, memory: m, signal: o.signal })).walEnd;
    }
  } catch (err) {
    pass.failure = err instanceof Error ? err : new Error(String(err));
  }
  pass.pendingBases = missingBases.length - pass.copiedBases;
  pass.pendingWal = missingWal.length - pass.copiedWal;
  pass.newestWal =
    [...m.wal]
      .filter((n) => SEGMENT_NAME.test(n))
      .sort()
      .at(-1) ?? null;
  pass.newestWalAt = pass.newestWal ? (m.indexedAt?.get(pass.newestWal) ?? null) : null;
  return pass;
}

async function copyBase(root: string, remote: S3PitrStore, b: BaseBackup): Promise<void> {
  const path = join(root, b.target, '_base', b.id, b.file);
  await remote.putBase(b, (w) => copyChecked(path, b, w, `Base backup ${b.id}`));
}

async function copyWal(local: LocalWalStore, remote: S3PitrStore, e: WalEntry): Promise<void> {
  await remote.putWal(e, (w) => copyChecked(join(local.dir, e.file), e, w, `WAL ${e.name}`));
}

const ignoreGone = (err: unknown) => {
  if (errnoCode(err) !== 'ENOENT') throw err;
};

/** The spool's copy of a segment in the bucket: entry, then file (the local index never names a file that is gone). */
async function removeLocalWal(local: LocalWalStore, e: WalEntry): Promise<number> {
  await unlink(join(local.dir, `${e.name}.json`)).catch(ignoreGone);
  await fsyncDir(local.dir);
  await rm(join(local.dir, e.file), { force: true });
  return 1;
}

/** The spool's copy of a base backup in the bucket: its base.json first, then the directory. */
async function removeLocalBase(root: string, b: BaseBackup): Promise<number> {
  const dir = join(root, b.target, '_base', b.id);
  await unlink(join(dir, 'base.json')).catch(ignoreGone);
  await rm(dir, { recursive: true, force: true });
  return 1;
}
