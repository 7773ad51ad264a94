import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { readFile, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { TargetName } from '../target-name.ts';
import { BotError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { BackupIdSchema, parseManifest, validManifest, type Manifest } from './manifest.ts';
import { BackupDirs, backupIdsUnder } from './backup-dirs.ts';
import { openFileWriter } from './file-writer.ts';
import { brokenStateIn, DAMAGED_MARKER, type DamagedBackup, DamagedBackups, damageIn, damagedMarkerText } from './damaged-backups.ts';
import { ManifestCache, missingBackup, VerifiedBackups } from './manifest-cache.ts';
import { listRecordFiles, writeRecordFile } from './record-files.ts';
import type { RecordKind, RestoreRecord } from './restore-record.ts';
import { errnoCode, exists, fsyncDir, newestMtime, readdirIfExists, statfsNearest, storageError, writeFileAtomically } from './fs-util.ts';
import { RESERVATION, reservationBody, reservedUnder } from './reservation.ts';
import type { ArtifactWriter, BackupOwner, ReservedBackup, Storage, UnfinishedBackup } from './types.ts';

const MANIFEST = 'manifest.json';
/** Artifact names: no path separators, no dot files, none of our own temporary suffixes. */
const FILE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

/**
 * Backups in a local directory: `<root>/<target>/<backupId>/<artifacts>` + `manifest.json`. Files are written under a
 * temporary name, fsynced and renamed; the manifest goes last: a directory without one is unfinished, never listed.
 */
export class LocalStorage implements Storage {
  readonly root: string;
  readonly #log: Logger | undefined;
  readonly #manifests = new ManifestCache();
  readonly #verified = new VerifiedBackups();
  readonly #dirs = new BackupDirs();
  readonly #damaged: DamagedBackups;

  constructor(root: string, log?: Logger) {
    this.root = resolve(root);
    this.#log = log;
    this.#damaged = new DamagedBackups(log);
  }

  describe = (): string => `local:${this.root}`;

  /** Names reach paths: they are checked here, whatever the caller already checked. */
  #dir(target: string, backupId: string): string {
    if (!TargetName.safeParse(target).success || !BackupIdSchema.safeParse(backupId).success || !backupId.startsWith(`${target}-`)) {
      throw new BotError('bad_request', `"${backupId}" is not a backup id of target "${target}".`);
    }
    return join(this.root, target, backupId);
  }

  #file(target: string, backupId: string, file: string): string {
    if (!FILE_NAME.test(file) || file === MANIFEST || /\.(partial|tmp)$/.test(file)) {
      throw new BotError('bad_request', `"${file}" is not a valid artifact name.`);
    }
    return join(this.#dir(target, backupId), file);
  }

  async beginBackup(target: string, backupId: string, owner?: BackupOwner): Promise<void> {
    const dir = this.#dir(target, backupId);
    try {
      await this.#dirs.create(dir); // exclusive; the parents it makes go again with a failed backup (backup-dirs.ts)
      // Not fsynced: a marker lost to a power cut only leaves the directory to retention's age rule.
      if (owner)
        await writeFile(join(dir, RESERVATION), reservationBody(backupId, owner), { mode: 0o640 }).catch(async (err: unknown) => {
          await this.#dirs.remove(dir);
          throw err;
        });
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') {
        throw new BotError('backup_exists', `A backup named ${backupId} already exists in ${this.describe()}; it was left untouched.`, { cause: err });
      }
      throw storageError(err, this.describe(), 'create the backup directory');
    }
  }

  async createArtifactWriter(target: string, backupId: string, file: string, replacingDamaged?: Manifest): Promise<ArtifactWriter> {
    const final = this.#file(target, backupId, file);
    const partial = `${final}.partial`;
    const finished = await exists(join(dirname(final), MANIFEST));
    if (finished && !(replacingDamaged && (await this.whyUnrestorable(replacingDamaged)))) {
      throw new BotError('storage_failed', `Backup ${backupId} is already finished; its files cannot change.`);
    }
    if (finished) await rm(partial, { force: true }); // a repair killed mid-way left it: it would block every later one
    return openFileWriter(partial, final, (err, action) => storageError(err, this.describe(), `${action} ${file}`));
  }

  async writeManifest(manifest: Manifest): Promise<void> {
    const m = validManifest(manifest);
    const dir = this.#dir(m.target, m.backupId);
    try {
      // The manifest vouches for its artifacts: refuse to write it for files that are missing or short.
      for (const a of m.artifacts) {
        const s = await stat(this.#file(m.target, m.backupId, a.file));
        if (s.size !== a.bytes) throw new BotError('storage_failed', `Artifact ${a.file} has ${s.size} bytes, not ${a.bytes}; the backup was not kept.`);
      }
      await writeFileAtomically(join(dir, MANIFEST), `${JSON.stringify(m, null, 2)}\n`);
      await fsyncDir(dirname(dir));
      this.#dirs.keep(dir);
    } catch (err) {
      throw storageError(err, this.describe(), 'write the manifest');
    }
  }

  async discardUnfinished(target: string, backupId: string): Promise<void> {
    const dir = this.#dir(target, backupId);
    if (await exists(join(dir, MANIFEST))) {
      throw new BotError('storage_failed', `Backup ${backupId} is finished; it is deleted through retention, not discarded.`);
    }
    await this.#dirs.remove(dir);
  }

  async readManifest(target: string, backupId: string): Promise<Manifest> {
    const path = join(this.#dir(target, backupId), MANIFEST);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw await missingBackup(this.root, dirname(path), target, backupId, err);
      throw storageError(err, this.describe(), 'read a manifest');
    }
    return parseManifest(text, target, backupId);
  }

  /** A manifest counts only while its artifacts are all there with their recorded sizes (re-read: VerifiedBackups). */
  async #readListable(target: string, backupId: string): Promise<Manifest | null> {
    const dir = this.#dir(target, backupId);
    const checkedAt = Date.now();
    // The directory first: a change after this stat gives it a new signature, so the next listing checks again.
    const dirSt = await stat(dir).catch(() => null);
    const known = dirSt && this.#verified.get(dir, dirSt, checkedAt);
    if (known) return known;
    this.#verified.forget(dir);
    const st = await stat(join(dir, MANIFEST)).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
      throw err;
    });
    if (!st || !dirSt) return null; // unfinished: never listed, not worth a warning
    let m: Manifest | undefined;
    try {
      // Written once and renamed into place: the same inode, size and mtime are the same manifest, already checked.
      const sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
      m = this.#manifests.get(dir, sig) ?? this.#manifests.set(dir, sig, await this.readManifest(target, backupId));
      const damage = await damageIn(dir, m);
      // Past its deadline it is retention's to delete (or finish deleting: artifacts go first), and still named, as expired.
      if (damage) throw damage;
      this.#damaged.forget(dir);
      this.#verified.remember(dir, dirSt, checkedAt, m);
      return m;
    } catch (err) {
      this.#damaged.note(dir, target, backupId, err, m);
      return null;
    }
  }

  /** Backups skipped by the last listing for a broken manifest or artifact, and why (list and /backup list say so). */
  damaged(target?: string): DamagedBackup[] {
    return this.#damaged.list(target);
  }

  async list(target?: string): Promise<Manifest[]> {
    if (target !== undefined && !TargetName.safeParse(target).success) throw new BotError('bad_request', `"${target}" is not a valid target name.`);
    const ids = await backupIdsUnder(this.root, target);
    const found = await Promise.all(ids.map(({ target: t, backupId }) => this.#readListable(t, backupId)));
    const [under, seen] = [target === undefined ? this.root : join(this.root, target, sep), new Set(ids.map((i) => join(this.root, i.target, i.backupId)))];
    for (const cache of [this.#manifests, this.#verified]) cache.keepOnly(under, seen);
    this.#damaged.keepOnly(under, seen);
    // Newest first by start time, never by name alone: names of different targets do not sort by time.
    return found
      .filter((m): m is Manifest => m !== null)
      .sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0));
  }

  async openArtifact(target: string, backupId: string, file: string): Promise<Readable> {
    const stream = createReadStream(this.#file(target, backupId, file));
    try {
      await once(stream, 'open');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new BotError('backup_not_found', `Backup ${backupId} has no file ${file}.`, { cause: err });
      throw storageError(err, this.describe(), `read ${file}`);
    }
    return stream;
  }

  async deleteBackup(target: string, backupId: string): Promise<void> {
    const dir = this.#dir(target, backupId);
    const manifest = await this.readManifest(target, backupId);
    try {
      // Artifacts first, manifest last: an interrupted delete leaves a manifest whose artifacts are gone,
      // which list() skips, and never artifacts without a manifest that someone might trust.
      for (const a of manifest.artifacts) await rm(join(dir, a.file), { force: true });
      for (const f of await readdirIfExists(dir)) if (f !== MANIFEST) await rm(join(dir, f), { force: true, recursive: true });
      // Another run deleting it at the same time (second reader): gone is what both wanted, not a failure.
      for (const remove of [() => unlink(join(dir, MANIFEST)), () => rmdir(dir)])
        await remove().catch((e: unknown) => errnoCode(e) === 'ENOENT' || Promise.reject(e));
      await fsyncDir(dirname(dir));
    } catch (err) {
      throw storageError(err, this.describe(), `delete backup ${backupId}`);
    }
  }

  /**
   * Directories that are not finished backups, untouched for `olderThanMs`: crashed or killed backups, and deletes
   * interrupted after the artifacts. The age is the newest mtime of the directory and its files: a directory's own
   * mtime stops moving once its `.partial` file exists, while the file keeps growing for as long as pg_dump runs.
   */
  async listUnfinished(olderThanMs: number, now: Date = new Date()): Promise<UnfinishedBackup[]> {
    const out: UnfinishedBackup[] = [];
    for (const { target, backupId } of await backupIdsUnder(this.root)) {
      const path = this.#dir(target, backupId);
      const state = await this.#unfinishedState(target, backupId);
      if (state === null) continue;
      const modifiedAt = await newestMtime(path);
      if (modifiedAt && now.getTime() - modifiedAt.getTime() >= olderThanMs) out.push({ target, backupId, path, modifiedAt, ...state });
    }
    return out;
  }

  async listReserved(): Promise<ReservedBackup[]> {
    return reservedUnder(this.root, (t, id) => this.#dir(t, id), MANIFEST);
  }

  /** No manifest; or a file missing or cut short, with the deadline (cleaned only past it). An unparsable manifest: ours to report. */
  async #unfinishedState(target: string, backupId: string): Promise<Pick<UnfinishedBackup, 'state' | 'retainUntil'> | null> {
    const dir = this.#dir(target, backupId);
    if (!(await exists(join(dir, MANIFEST)))) return { state: 'no-manifest' };
    return brokenStateIn(dir, await this.readManifest(target, backupId).catch(() => null));
  }

  whyUnrestorable(m: Manifest): Promise<string | null> {
    return damageIn(this.#dir(m.target, m.backupId), m).then((d) => d?.message ?? null);
  }

  freeSpace = (): Promise<{ totalBytes: number; freeBytes: number }> => statfsNearest(this.root);

  async markDamaged(target: string, backupId: string, why: string, at: Date = new Date()): Promise<void> {
    await writeFileAtomically(join(this.#dir(target, backupId), DAMAGED_MARKER), damagedMarkerText(why, at));
  }

  unmarkDamaged = (target: string, backupId: string) => rm(join(this.#dir(target, backupId), DAMAGED_MARKER), { force: true });

  async writeRecord(record: RestoreRecord): Promise<void> {
    await writeRecordFile(this.root, record, this.describe());
  }

  async listRecords(kind: RecordKind, target?: string): Promise<RestoreRecord[]> {
    return listRecordFiles(this.root, kind, target, this.#log);
  }
}
