import { type PartialEntry, PartialWalStore } from './partial-store.ts';
import { rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../config-types.ts';
import { toUserMessage } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { errnoCode, fsyncDir } from '../../storage/fs-util.ts';
import type { BaseBackup } from './base-backup.ts';
import { listBaseBackups } from './pitr-restore.ts';
import { remoteArchive } from './s3-archive.ts';
import { mapLimit } from '../../storage/s3-objects.ts';
import { type S3PitrStore, s3PitrStore } from './s3-pitr-store.ts';
import { pitrInS3 } from './pitr-location.ts';
import { archivedWal, QUARANTINE } from './wal-index.ts';
import { LocalWalStore, type WalEntry } from './wal-store.ts';

/**
 * Where PITR retention reads and deletes one target's archive: BACKUP_DIR (and, with S3 as a copy, the same files
 * in the bucket too: what the disk deletes, never more), or with S3 as the primary store the bucket alone (the spool
 * on the worker's disk holds only what is not uploaded yet, which retention never touches).
 */
export interface PitrArchiveOps {
  where: string;
  /** `unusable`: indexed WAL whose stored file is gone or set aside (wal-index.ts): deleted like the rest, no part of a window. */
  list(): Promise<{ bases: BaseBackup[]; wal: WalEntry[]; unusable?: ReadonlySet<string> }>;
  /** The partial segment's snapshots: never deleted by retention, but part of the recoverable window it reports. */
  partials(): Promise<PartialEntry[]>;
  bases(): Promise<BaseBackup[]>;
  deleteBase(b: BaseBackup): Promise<void>;
  deleteWal(e: WalEntry): Promise<void>;
  close(): void;
}

const ignoreGone = (err: unknown) => {
  if (errnoCode(err) !== 'ENOENT') throw err;
};

// The record first: a base backup exists exactly while its base.json does, so a half-deleted one is never chosen.
async function deleteLocalBase(root: string, b: BaseBackup): Promise<void> {
  const dir = join(root, b.target, '_base', b.id);
  await unlink(join(dir, 'base.json')).catch(ignoreGone);
  await fsyncDir(dir);
  await rm(dir, { recursive: true, force: true });
}

// The entry first: a segment is archived exactly while its entry exists.
async function deleteLocalWal(store: LocalWalStore, e: WalEntry): Promise<void> {
  await unlink(join(store.dir, `${e.name}.json`)).catch(ignoreGone);
  await fsyncDir(store.dir);
  await rm(join(store.dir, e.file), { force: true });
  // A file the checksum scrub set aside as damaged goes with its entry.
  await rm(join(store.dir, `${e.file}${QUARANTINE}`), { force: true });
}

/**
 * The bucket's archive, with the segments a fetch marked damaged (s3-pitr-store.ts markDamaged) as `unusable`: no
 * part of a window, deleted with the rest when their time comes, mark included (second reader: left out of the
 * listing, they stayed in the bucket for ever).
 */
async function bucketArchive(remote: S3PitrStore): Promise<{ bases: BaseBackup[]; wal: WalEntry[]; unusable: ReadonlySet<string> }> {
  const [archive, listed] = await Promise.all([remoteArchive(remote), remote.listWal()]);
  const marked = (
    await mapLimit(
      listed.filter((w) => w.damaged),
      8,
      (w) => remote.walEntry(w.name),
    )
  ).filter((e): e is WalEntry => e !== null);
  const wal = [...archive.wal, ...marked].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { bases: archive.bases, wal, unusable: new Set(marked.map((e) => e.name)) };
}

const inBucket = (remote: S3PitrStore): PitrArchiveOps => ({
  where: remote.describe(),
  list: () => bucketArchive(remote),
  partials: () => remote.listPartials(),
  bases: () => remote.listBases(),
  deleteBase: (b) => remote.removeBase(b),
  deleteWal: (e) => remote.removeWal(e),
  close: () => remote.client.destroy(),
});

export function pitrArchiveOps(o: {
  root: string;
  target: string;
  dryRun: boolean;
  /** The config's S3 section: a copy to delete from too, or the primary store. */
  s3?: Pick<Config, 's3'> | undefined;
  log: Logger;
  /** A copy in the bucket not deleted is said, never fatal: the bucket's lifecycle rule is the safety net (docs/pitr.md). */
  onCopyFailure: (sentence: string) => void;
}): PitrArchiveOps {
  if (o.s3 && pitrInS3(o.s3)) {
    const remote = s3PitrStore(o.s3, o.target, { log: o.log });
    if (remote) return inBucket(remote);
  }
  const store = new LocalWalStore(o.root, o.target);
  const copy = o.dryRun || !o.s3 ? null : s3PitrStore(o.s3, o.target, { log: o.log });
  const alsoCopy = async (what: string, remove: (r: S3PitrStore) => Promise<void>) => {
    if (!copy) return;
    await remove(copy).catch((err: unknown) => o.onCopyFailure(`could NOT delete the off-site copy of ${what} in ${copy.describe()}: ${toUserMessage(err)}`));
  };
  return {
    where: store.describe(),
    list: async () => {
      const [bases, wal, present] = await Promise.all([listBaseBackups(o.root, o.target), store.list(), archivedWal(store)]);
      const here = new Set(present.map((e) => e.name));
      return { bases, wal, unusable: new Set(wal.filter((e) => !here.has(e.name)).map((e) => e.name)) };
    },
    partials: () => new PartialWalStore(o.root, o.target).list(),
    bases: () => listBaseBackups(o.root, o.target),
    deleteBase: async (b) => {
      await deleteLocalBase(o.root, b);
      await alsoCopy(`base backup ${b.id}`, (r) => r.removeBase(b));
    },
    deleteWal: async (e) => {
      await deleteLocalWal(store, e);
      await alsoCopy(`WAL ${e.name}`, (r) => r.removeWal(e));
    },
    close: () => copy?.client.destroy(),
  };
}
