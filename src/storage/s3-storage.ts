import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { BotError, NoSuchBackupError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { parseManifest, validManifest, type Manifest } from './manifest.ts';
import { artifactProblem } from './manifest-cache.ts';
import { DAMAGED_MARKER, type DamagedBackup, DamagedBackups, damagedMarkerText, markedDamaged } from './damaged-backups.ts';
import type { RecordKind, RestoreRecord } from './restore-record.ts';
import { listS3Records, writeS3Record } from './s3-records.ts';
import { S3Bucket, type S3StorageOptions, createS3Client, mapLimit, type ObjectInfo } from './s3-objects.ts';
import { MANIFEST, RESERVATION, S3Keys } from './s3-keys.ts';
import { s3Error } from './s3-errors.ts';
import { openS3Writer } from './s3-writer.ts';
import { reservationBody, reservationOwner } from './reservation.ts';
import type { ArtifactWriter, BackupOwner, ReservedBackup, Storage, UnfinishedBackup } from './types.ts';

export type { S3StorageOptions } from './s3-objects.ts';

const MiB = 1024 * 1024;

/** Whether a backup's objects include the checksum scrub's damage marker. */
const isMarked = (objects: readonly ObjectInfo[]) => objects.some((o) => o.key.endsWith(`/${DAMAGED_MARKER}`));
/** An artifact's size among a backup's objects (artifactProblem's `sizeOf`); undefined when it is not there. */
const sizeIn = (objects: readonly ObjectInfo[]) => (file: string) => objects.find((o) => o.key.endsWith(`/${file}`))?.size;

/** Reads of manifests and records in parallel: enough to hide latency, few enough to stay polite. */
const READ_CONCURRENCY = 8;

/**
 * Backups in an S3 bucket, same layout as LocalStorage under a prefix: `<prefix>/<target>/<backupId>/<file>`,
 * `manifest.json` written last. There is no rename on S3, so artifacts go straight to their final keys; what
 * makes a backup exist is its manifest, which is written only after every artifact is confirmed with its exact
 * size, and list() shows a backup only while its manifest parses and every artifact has the manifest's size.
 */
export class S3Storage implements Storage {
  readonly bucket: string;
  readonly #keys: S3Keys;
  readonly #s3: S3Bucket;
  readonly #client: S3Client;
  readonly #log: Logger | undefined;
  readonly #partSize: number;
  readonly #queueSize: number;
  /** Backups the last listing left out as damaged, by `<target>/<backupId>`. */
  readonly #damaged: DamagedBackups;

  constructor(o: S3StorageOptions) {
    this.bucket = o.bucket;
    this.#keys = new S3Keys(o.prefix ?? '');
    this.#log = o.log;
    this.#damaged = new DamagedBackups(o.log);
    this.#partSize = Math.max(5 * MiB, o.partSizeBytes ?? 16 * MiB);
    this.#queueSize = Math.max(1, o.queueSize ?? 3);
    this.#client = createS3Client(o);
    this.#s3 = new S3Bucket(this.#client, o.bucket, this.describe(), o.log);
  }

  describe(): string {
    return `s3://${this.bucket}${this.#keys.root ? `/${this.#keys.root.slice(0, -1)}` : ''}`;
  }

  /** Closes the SDK's sockets (tests, shutdown). */
  destroy(): void {
    this.#client.destroy();
  }

  async beginBackup(target: string, backupId: string, owner?: BackupOwner): Promise<void> {
    const dir = this.#keys.backup(target, backupId);
    const exists = () => new BotError('backup_exists', `A backup named ${backupId} already exists in ${this.describe()}; it was left untouched.`);
    // No mkdir on S3: a reservation object makes the claim visible at once, If-None-Match exclusive where the server
    // supports conditional writes. A whole listing, not MaxKeys=1: a backup holds a handful of objects, and some
    // S3-compatible servers (s3rver on OpenSSL 3) fail on truncated listings.
    if ((await this.#s3.list(dir, `reserve backup ${backupId}`)).length > 0) throw exists();
    const body = reservationBody(backupId, owner);
    if (!(await this.#s3.writeText(`${dir}${RESERVATION}`, body, `reserve backup ${backupId}`, true))) throw exists();
  }

  async createArtifactWriter(target: string, backupId: string, file: string, replacingDamaged?: Manifest): Promise<ArtifactWriter> {
    const key = this.#keys.artifact(target, backupId, file);
    const finished = (await this.#s3.size(this.#keys.manifest(target, backupId), `check backup ${backupId}`)) !== null;
    if (finished && !(replacingDamaged && (await this.whyUnrestorable(replacingDamaged)))) {
      throw new BotError('storage_failed', `Backup ${backupId} is already finished; its files cannot change.`);
    }
    return openS3Writer({
      client: this.#client,
      bucket: this.bucket,
      key,
      partSize: this.#partSize,
      queueSize: this.#queueSize,
      fail: (err, action) => s3Error(err, this.describe(), `${action} ${file} of backup ${backupId}`),
      log: this.#log,
      replacing: finished,
    });
  }

  async writeManifest(manifest: Manifest): Promise<void> {
    const m = validManifest(manifest);
    // The manifest vouches for its artifacts: refuse to write it for objects that are missing or short.
    for (const a of m.artifacts) {
      const size = await this.#s3.size(this.#keys.artifact(m.target, m.backupId, a.file), 'check the artifacts before writing the manifest');
      if (size !== a.bytes) {
        throw new BotError('storage_failed', `Artifact ${a.file} has ${size ?? 'no'} bytes in ${this.describe()}, not ${a.bytes}; the backup was not kept.`);
      }
    }
    await this.#s3.writeText(this.#keys.manifest(m.target, m.backupId), `${JSON.stringify(m, null, 2)}\n`, `write the manifest of ${m.backupId}`);
  }

  async discardUnfinished(target: string, backupId: string): Promise<void> {
    const dir = this.#keys.backup(target, backupId);
    const action = `discard the unfinished backup ${backupId}`;
    if ((await this.#s3.size(this.#keys.manifest(target, backupId), action)) !== null) {
      throw new BotError('storage_failed', `Backup ${backupId} is finished; it is deleted through retention, not discarded.`);
    }
    await this.#s3.abortUploads(dir);
    // The reservation goes last, so the name stays taken until everything else is gone.
    const objects = await this.#s3.list(dir, action);
    for (const o of objects.filter((x) => !x.key.endsWith(`/${RESERVATION}`))) await this.#s3.delete(o.key, action);
    for (const o of objects.filter((x) => x.key.endsWith(`/${RESERVATION}`))) await this.#s3.delete(o.key, action);
  }

  async readManifest(target: string, backupId: string): Promise<Manifest> {
    const text = await this.#s3.readText(this.#keys.manifest(target, backupId), `read the manifest of ${backupId}`);
    if (text === null) throw new NoSuchBackupError(target, backupId);
    return parseManifest(text, target, backupId);
  }

  /** Objects under the prefix (or one target), grouped by backup. One listing also gives every object's size. */
  async #backups(target?: string): Promise<Map<string, { target: string; backupId: string; objects: ObjectInfo[] }>> {
    const under = target !== undefined ? this.#keys.target(target) : this.#keys.root;
    const groups = new Map<string, { target: string; backupId: string; objects: ObjectInfo[] }>();
    for (const o of await this.#s3.list(under, 'list backups')) {
      const p = this.#keys.parseBackupKey(o.key);
      if (!p) continue;
      const id = `${p.target}/${p.backupId}`;
      const g = groups.get(id) ?? { target: p.target, backupId: p.backupId, objects: [] };
      g.objects.push(o);
      groups.set(id, g);
    }
    return groups;
  }

  async list(target?: string): Promise<Manifest[]> {
    const finished = [...(await this.#backups(target)).values()].filter((g) => g.objects.some((o) => o.key.endsWith(`/${MANIFEST}`)));
    this.#damaged.keepOnly(target === undefined ? '' : `${target}/`, new Set(finished.map((g) => `${g.target}/${g.backupId}`)));
    const found = await mapLimit(finished, READ_CONCURRENCY, async (g) => {
      // S3 failing to answer fails the listing: a backup silently missing from it would look like no backup.
      const text = await this.#s3.readText(this.#keys.manifest(g.target, g.backupId), 'list backups');
      if (text === null) return null; // deleted since the listing
      const marked = isMarked(g.objects) ? markedDamaged((await this.#s3.readText(this.#markerKey(g.target, g.backupId), 'list backups')) ?? '{}') : null;
      let m: Manifest | undefined;
      try {
        m = parseManifest(text, g.target, g.backupId);
        // A manifest counts only while its artifacts are all there with their recorded sizes, and not marked damaged.
        const bad = marked ? DAMAGED_MARKER : artifactProblem(m, sizeIn(g.objects));
        // Past its deadline it is retention's to delete (or finish deleting: artifacts go first), and still named, as expired.
        if (bad) throw marked ?? new Error(bad);
        this.#damaged.forget(`${g.target}/${g.backupId}`);
        return m;
      } catch (err) {
        this.#damaged.note(`${g.target}/${g.backupId}`, g.target, g.backupId, err, m);
        return null;
      }
    });
    // Newest first by start time, never by name alone: names of different targets do not sort by time.
    return found
      .filter((m): m is Manifest => m !== null)
      .sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.backupId < b.backupId ? 1 : a.backupId > b.backupId ? -1 : 0));
  }

  /** Backups the last listing left out for a broken manifest or artifact, and why. */
  damaged(target?: string): DamagedBackup[] {
    return this.#damaged.list(target);
  }

  async openArtifact(target: string, backupId: string, file: string): Promise<Readable> {
    const stream = await this.#s3.read(this.#keys.artifact(target, backupId, file), `read ${file} of backup ${backupId}`);
    if (!stream) throw new BotError('backup_not_found', `Backup ${backupId} has no file ${file}.`);
    return stream;
  }

  #markerKey = (target: string, backupId: string) => `${this.#keys.backup(target, backupId)}${DAMAGED_MARKER}`;

  async whyUnrestorable(m: Manifest): Promise<string | null> {
    const objects = await this.#s3.list(this.#keys.backup(m.target, m.backupId), `check backup ${m.backupId}`);
    if (!isMarked(objects)) return artifactProblem(m, sizeIn(objects)) ?? null;
    return markedDamaged((await this.#s3.readText(this.#markerKey(m.target, m.backupId), `check backup ${m.backupId}`)) ?? '{}')?.message ?? null;
  }

  async markDamaged(target: string, backupId: string, why: string, at: Date = new Date()): Promise<void> {
    await this.#s3.writeText(this.#markerKey(target, backupId), damagedMarkerText(why, at), `mark backup ${backupId} damaged`);
  }

  unmarkDamaged = (target: string, backupId: string) => this.#s3.delete(this.#markerKey(target, backupId), `clear the damage mark of backup ${backupId}`);

  async deleteBackup(target: string, backupId: string): Promise<void> {
    const manifest = await this.readManifest(target, backupId);
    const action = `delete backup ${backupId}`;
    const manifestKey = this.#keys.manifest(target, backupId);
    // Artifacts first, manifest last: an interrupted delete leaves a manifest whose artifacts are gone, which
    // list() skips, and never artifacts without a manifest that someone might trust.
    for (const a of manifest.artifacts) await this.#s3.delete(this.#keys.artifact(target, backupId, a.file), action);
    for (const o of await this.#s3.list(this.#keys.backup(target, backupId), action)) if (o.key !== manifestKey) await this.#s3.delete(o.key, action);
    await this.#s3.delete(manifestKey, action);
  }

  /**
   * Backups not finished whose newest object is older than `olderThanMs`: crashed runs (no manifest), deletes cut
   * short after the artifacts (objects gone or short, with the deadline the plan cleans past). An unparsable manifest
   * is damage for a person, not ours to delete. Uploads in progress are invisible: only the reservation's age shows.
   */
  async listUnfinished(olderThanMs: number, now: Date = new Date()): Promise<UnfinishedBackup[]> {
    const old = [...(await this.#backups()).values()]
      .map((g) => ({ ...g, modifiedAt: new Date(Math.max(...g.objects.map((o) => o.modified.getTime()))) }))
      .filter((g) => now.getTime() - g.modifiedAt.getTime() >= olderThanMs);
    const found = await mapLimit(old, READ_CONCURRENCY, async (g): Promise<UnfinishedBackup | null> => {
      const at = { target: g.target, backupId: g.backupId, path: `s3://${this.bucket}/${this.#keys.backup(g.target, g.backupId)}`, modifiedAt: g.modifiedAt };
      if (!g.objects.some((o) => o.key.endsWith(`/${MANIFEST}`))) return { ...at, state: 'no-manifest' };
      const text = await this.#s3.readText(this.#keys.manifest(g.target, g.backupId), 'list unfinished backups');
      if (text === null) return null; // deleted since the listing
      let m: Manifest;
      try {
        m = parseManifest(text, g.target, g.backupId);
      } catch {
        return null;
      }
      if (isMarked(g.objects)) return { ...at, state: 'marked-damaged', retainUntil: m.retainUntil };
      return artifactProblem(m, sizeIn(g.objects)) ? { ...at, state: 'artifacts-missing', retainUntil: m.retainUntil } : null;
    });
    return found.filter((u): u is UnfinishedBackup => u !== null);
  }

  async listReserved(): Promise<ReservedBackup[]> {
    const reserved = [...(await this.#backups()).values()].filter((g) => !g.objects.some((o) => o.key.endsWith(`/${MANIFEST}`)));
    return mapLimit(reserved, READ_CONCURRENCY, async (g): Promise<ReservedBackup> => {
      const dir = this.#keys.backup(g.target, g.backupId);
      const marked = g.objects.some((o) => o.key === `${dir}${RESERVATION}`);
      const text = marked ? await this.#s3.readText(`${dir}${RESERVATION}`, 'list reserved backups') : null;
      const modifiedAt = new Date(Math.max(0, ...g.objects.map((o) => o.modified.getTime())));
      return { target: g.target, backupId: g.backupId, path: `s3://${this.bucket}/${dir}`, owner: reservationOwner(text), modifiedAt };
    });
  }

  async writeRecord(record: RestoreRecord): Promise<void> {
    await writeS3Record(this.#s3, this.#keys, record);
  }

  async listRecords(kind: RecordKind, target?: string): Promise<RestoreRecord[]> {
    return listS3Records(this.#s3, this.#keys, kind, target, this.#log);
  }
}
