import type { Writable } from 'node:stream';
import type { AgeIdentity } from '../../crypto/age.ts';
import { BotError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import type { Storage } from '../../storage/index.ts';

/**
 * A stored backup's database archive as the restores read it: what opening one takes and gives. Opening it is
 * open-archive.ts; the decompression into a private file, decompress-to-file.ts; one pg_restore over it,
 * pg-restore-child.ts.
 */

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
  /** The furthest byte of the decompressed archive a pg_restore over it has read so far (0 when unknown). */
  bytesRead(): Promise<number>;
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
export function databaseArtifact(m: Manifest) {
  const a = m.artifacts.find((x) => x.role === 'database');
  if (!a) throw new BotError('storage_failed', `Backup ${m.backupId} has no database artifact in its manifest, so it cannot be restored.`);
  return a;
}

/** How a failed decryption reads in a problem: the library's message, or whatever was thrown. */
export function decryptionMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
