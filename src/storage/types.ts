import type { Readable, Writable } from 'node:stream';
import type { Manifest } from './manifest.ts';
import type { RecordKind, RestoreRecord } from './restore-record.ts';

/** One file of a backup being written: bytes land under a temporary name until `commit()`. */
export interface ArtifactWriter {
  stream: Writable;
  /**
   * The local file `stream` writes, when there is one: a tool may write it directly instead (postgres/backup/native-pipe.ts), and
   * then `stream` is only ended, empty, before `commit()`.
   */
  path?: string;
  /** Makes the file visible under its final name (after the stream has finished). */
  commit(): Promise<void>;
  /** Drops whatever was written. Safe to call after a failure, twice, or after commit (then it is a no-op). */
  abort(): Promise<void>;
}

/** A backup directory that is not a finished backup (see Storage.listUnfinished). */
export interface UnfinishedBackup {
  target: string;
  backupId: string;
  /** For messages and logs: a local path or an `s3://` prefix. */
  path: string;
  /** When anything in it was last written: a dump still streaming keeps this fresh. */
  modifiedAt: Date;
  /**
   * `no-manifest`: discarded with discardUnfinished; `artifacts-missing`: the manifest is left, deleteBackup finishes
   * the job; `marked-damaged`: the checksum scrub found it damaged (storage/scrub.ts), deleted like an expired backup.
   */
  state: 'no-manifest' | 'artifacts-missing' | 'marked-damaged';
  /**
   * `artifacts-missing`, `marked-damaged`: the manifest's deadline. Retention deletes artifacts first and the manifest last, so only a
   * backup past its deadline can be one it left half-deleted; one still within it lost its files some other way
   * (damage: reported, never deleted; retention-plan.ts).
   */
  retainUntil?: string | null;
}

/** A backup directory without a manifest, and the job its reservation names (see Storage.listReserved). */
export interface ReservedBackup {
  target: string;
  backupId: string;
  /** For messages and logs: a local path or an `s3://` prefix. */
  path: string;
  /** null when the reservation names nobody (the CLI, a copy, an older version) or its marker cannot be read. */
  owner: BackupOwner | null;
  /** When anything in it was last written (as listUnfinished's). */
  modifiedAt: Date;
}

/**
 * The job that reserved a backup, recorded beside it before anything else is written, so a starting worker can tell
 * a dead job's leftovers from a directory another worker is still writing (workers/backup-attempts.ts).
 */
export interface BackupOwner {
  /** The BullMQ queue's qualified name, e.g. `{pgbb}:backup`: two deployments sharing a storage never judge each other's jobs. */
  queue: string;
  jobId: string;
}

/** Where backups live. Local directory now; S3 later behind the same interface. */
export interface Storage {
  /** For messages and logs, e.g. `local:/var/backups/pgbb`. */
  describe(): string;
  /** A local directory's path (LocalStorage): where its storage mark lives (storage-mark.ts). */
  readonly root?: string;
  /**
   * Reserves `<target>/<backupId>/`; fails if that backup already exists. An `owner` is recorded in the reservation
   * (a `.reserved` marker) and read back by listReserved.
   */
  beginBackup(target: string, backupId: string, owner?: BackupOwner): Promise<void>;
  /**
   * A writer of one artifact of a backup not finished; or, given `replacingDamaged` (its manifest), of a finished
   * backup that cannot be restored as stored: the repair's (storage/copy-scrub.ts). The old file stays until the new
   * one is whole (a rename, an upload's completion).
   */
  createArtifactWriter(target: string, backupId: string, file: string, replacingDamaged?: Manifest): Promise<ArtifactWriter>;
  /** Written last and atomically: from this moment on the backup exists. */
  writeManifest(manifest: Manifest): Promise<void>;
  /** Removes a backup that never got its manifest (failed or crashed). */
  discardUnfinished(target: string, backupId: string): Promise<void>;
  readManifest(target: string, backupId: string): Promise<Manifest>;
  /** Finished backups (valid manifest), newest first by start time, for one target or all. */
  list(target?: string): Promise<Manifest[]>;
  /**
   * Backups the last list() left out because a manifest or artifact is broken, and why; `expired`: its deadline, when
   * past (retention deletes it at its next run).
   */
  damaged?(target?: string): Array<{ target: string; backupId: string; why: string; marked?: true; archiveIntact?: true; expired?: string }>;
  /**
   * Why this finished backup cannot be restored as stored (marked damaged, an artifact missing, unreadable or of
   * another size), or null: what a listing would say of it, asked of it alone (catalog.ts findRestorable).
   */
  whyUnrestorable?(m: Manifest): Promise<string | null>;
  /** Marks a finished backup damaged (the checksum scrub found it so): listings leave it out from then on, saying why. */
  markDamaged?(target: string, backupId: string, why: string, at?: Date): Promise<void>;
  /** Removes that mark, once a repair rewrote the backup's files and read them back whole. */
  unmarkDamaged?(target: string, backupId: string): Promise<void>;
  openArtifact(target: string, backupId: string, file: string): Promise<Readable>;
  /** Deletes artifacts first, then the manifest, so a half-deleted backup is never listed as good. */
  deleteBackup(target: string, backupId: string): Promise<void>;
  /**
   * Backup directories that are not finished backups and were last written at least `olderThanMs` ago, for
   * retention to clean: no manifest (a crashed or killed run), or a manifest whose artifacts are gone (a delete
   * interrupted between the artifacts and the manifest). Records (`_records`) and the audit trail are never listed.
   */
  listUnfinished?(olderThanMs: number, now?: Date): Promise<UnfinishedBackup[]>;
  /**
   * Every backup without a manifest (being written, or left by a run that died), with the job its reservation
   * names: a starting worker removes those whose job is no longer running. Reads markers, never manifests, so it
   * is cheap enough for every start.
   */
  listReserved?(): Promise<ReservedBackup[]>;
  /** Room left where backups are written, when the backend can tell (a local disk can; S3 cannot). */
  freeSpace?(): Promise<{ totalBytes: number; freeBytes: number }>;
  /** Keeps the record of a restore test or restore beside the backups, outside every backup (retention keeps it). */
  writeRecord(record: RestoreRecord): Promise<void>;
  /** Records of one kind, newest first by start time, for one target or all. */
  listRecords(kind: RecordKind, target?: string): Promise<RestoreRecord[]>;
}
