import { safeProgress } from '../progress.ts';
import type { TargetConfig } from '../../config.ts';
import type { Logger } from '../../logger.ts';
import type { BackupKind, Manifest, RetentionClass } from '../../storage/index.ts';
import type { BackupOwner, Storage } from '../../storage/index.ts';
import { reserveBackupId } from '../../storage/index.ts';
import { serverLabel } from '../connection.ts';
import type { DumpScope } from '../dump-scope.ts';
import type { FailureContext } from '../failures.ts';
import { backupEncryption, readBack, type BackupEncryptionOption } from './backup-encryption.ts';
import { throwIfCanceled, toBotError } from './backup-failure.ts';
import { type LockWait, lockParts, watchLockWaits } from './lock-wait.ts';
import { BotError } from '../../errors.ts';
import { LOCK_GAVE_UP } from '../failures.ts';
import { backupManifest } from './backup-manifest.ts';
import { openSource, prepareTools } from './backup-source.ts';
import { abortAll, commitAll, dumpInSnapshot, startCounts } from './dump-in-snapshot.ts';
import type { VerifyMode } from './verify.ts';

export interface BackupProgress {
  phase: 'connecting' | 'counting' | 'dumping' | 'committing';
  /** Bytes pg_dump has produced so far (an estimate while dumping). */
  rawBytes?: number;
  /** Compressed bytes stored so far. */
  bytes?: number;
  /** While dumping: the dumped tables' size on disk (heap and TOAST), read in the snapshot; the first backup's total. */
  tablesBytes?: number;
  /** Set while the dump (or the counting) waits for a lock another session holds: what, and who (lock-wait.ts). */
  waiting?: string;
}

export interface RunBackupOptions {
  target: TargetConfig;
  storage: Storage;
  backupId: string;
  kind: BackupKind;
  retentionClass: RetentionClass;
  retainUntil: Date | null;
  requestedBy: Manifest['requestedBy'];
  jobId: string | null;
  label: string | null;
  compressionLevel: number;
  pgBinDir?: string;
  signal?: AbortSignal;
  log: Logger;
  onProgress?: (p: BackupProgress) => void;
  now?: () => Date;
  /** The job reserving the backup, recorded in its reservation: a starting worker removes a dead job's leftovers. */
  owner?: BackupOwner;
  /** Called once the backup id is reserved, before the dump starts (the worker records it in the job's data). */
  onReserved?: (backupId: string) => Promise<void>;
  /** The manifest's startedAt; the worker passes the time it derived the backup id and retention deadline from. */
  startedAt?: Date;
  /** How long pg_dump may wait for a table lock before giving up (default 5 minutes). */
  lockWaitTimeoutMs?: number;
  /** How often a dump whose progress stands still is checked for a lock wait (default 5 s; lock-wait.ts). */
  lockWatchMs?: number;
  /** How the stored artifact is read back before the manifest is written (default 'list'; see verify.ts). */
  verify?: VerifyMode;
  /**
   * age recipients every artifact is encrypted to (after zstd, before hashing and storage). Without recipients a
   * production target refuses to back up unless `optedOut` (the config file's `encryption: none`).
   */
  encryption: BackupEncryptionOption;
  /** The age CLI: undefined finds `age` on PATH (else encrypts in-process), null always encrypts in-process. */
  agePath?: string | null;
  zstdPath?: string;
}

/**
 * One backup: reserve the directory, export a snapshot and count in it, `pg_dump --snapshot` through zstd into
 * storage, globals, commit, read the artifact back, and only then write the manifest. On any failure nothing is left
 * behind and the error says what happened in one sentence.
 */
export async function runBackup(o: RunBackupOptions): Promise<Manifest> {
  const now = o.now ?? (() => new Date());
  const startedAt = o.startedAt ?? now();
  const timing = phaseTimer();
  const ctx: FailureContext = { tool: 'pg_dump', server: serverLabel(o.target.url), storage: o.storage.describe() };
  const { backupId, encryption } = await reserve(o);
  const log = o.log.child({ backupId });
  let snapshotPid: number | null = null;
  const emit = safeProgress(o.onProgress, log);
  const watch = watchLockWaits<BackupProgress>({ url: o.target.url, snapshotPid: () => snapshotPid, everyMs: o.lockWatchMs ?? 5000, emit, log });
  const progress = watch.progress;
  const { signal } = o;
  const to = { storage: o.storage, target: o.target.name, backupId };
  const lockWaitMs = o.lockWaitTimeoutMs ?? 5 * 60_000;
  const preparing = prepareTools(o, encryption);
  try {
    await o.onReserved?.(backupId);
    const source = await openSource({ url: o.target.url, lockWaitMs, pgBinDir: o.pgBinDir, preparing, ctx, signal, progress, log });
    snapshotPid = source.snapshot.pid;
    timing.mark('snapshot');
    const scope: DumpScope = { schemas: o.target.schemas, excludeTables: o.target.excludeTables };
    const counting = startCounts({ snapshot: source.snapshot, scope, ctx, signal, progress, log });
    const level = o.compressionLevel;
    const dumped = await dumpInSnapshot({ to, url: o.target.url, source, counting, scope, encryption, level, lockWaitMs, signal, progress, log });
    timing.mark('dumped');
    try {
      progress({ phase: 'committing' });
      await commitAll(dumped.writers);
      timing.mark('committed');
      const { zstd, tools, readBack: key } = source;
      const artifact = dumped.database.artifact;
      const checked = await readBack({ ...to, artifact, identity: key?.identity, zstd, pgRestore: tools.pgRestore, mode: o.verify, signal });
      timing.mark('verified');
      throwIfCanceled(signal);
      const manifest = backupManifest({ request: o, backupId, startedAt, finishedAt: now(), source, dumped, checked, scope });
      // Written last: from this moment on the backup exists.
      await o.storage.writeManifest(manifest);
      timing.mark('manifest');
      const bytes = manifest.artifacts[0]?.rawBytes;
      log.info({ bytes, tocEntries: checked.tocEntries, ms: manifest.durationMs, phases: timing.phases }, 'backup written');
      return manifest;
    } catch (err) {
      // Committed or not, the artifacts of a backup without a manifest go.
      await abortAll(dumped.writers);
      throw err;
    }
  } catch (err) {
    const failure = withLockHolder(toBotError(err, ctx, signal), watch.last());
    log.warn({ err, code: failure.code }, 'backup failed; discarding what was written');
    await o.storage.discardUnfinished(o.target.name, backupId).catch((e: unknown) => log.error({ err: e }, 'could not discard the unfinished backup'));
    throw failure;
  } finally {
    watch.stop();
  }
}

/**
 * pg_dump gave up waiting for a lock: the verdict names the table and the session the watch saw holding it. pg_dump
 * names the table it gave up on ("Query was: LOCK TABLE …"): a wait the watch saw on another table (granted since,
 * while the dump's progress stood still taking its locks) is not named for it; that table alone is.
 */
export function withLockHolder(failure: BotError, seen: LockWait | null): BotError {
  if (!failure.userMessage.startsWith(LOCK_GAVE_UP)) return failure;
  const gaveUpOn = /query was: LOCK TABLE (.+) IN ACCESS SHARE MODE/i.exec(failure.message)?.[1];
  // `includes`: a pg_dump that locks its tables in batches names them all in one statement.
  if (!seen || (gaveUpOn !== undefined && !gaveUpOn.includes(seen.what))) {
    if (gaveUpOn === undefined) return failure;
    const said = `${LOCK_GAVE_UP} on ${gaveUpOn}, held by another session (for example a running ALTER TABLE); run it again once that has finished.`;
    return new BotError(failure.code, said, { cause: failure, detail: failure.message });
  }
  const { on, held } = lockParts(seen);
  const end = seen.holder ? ` (or end that session: \`SELECT pg_terminate_backend(${seen.holder.pid})\`)` : '';
  return new BotError(failure.code, `${LOCK_GAVE_UP} ${on}${held}; run it again once that has finished${end}.`, { cause: failure, detail: failure.message });
}

/**
 * Reserves the backup's directory. Before anything is reserved or dumped: a canceled backup stops, and an
 * unencrypted production backup is refused outright. The preferred id may be taken by a backup started in the same
 * second: the reserved one can carry a suffix.
 */
async function reserve(o: RunBackupOptions): Promise<{ backupId: string; encryption: { recipients: string[] } | null }> {
  throwIfCanceled(o.signal);
  const encryption = backupEncryption(o.target, o.encryption);
  const backupId = await reserveBackupId(o.storage, o.target.name, o.backupId, undefined, o.owner);
  return { backupId, encryption };
}

/** Where the time went, in the 'backup written' log line: milliseconds since runBackup was called, per phase. */
function phaseTimer() {
  const t0 = performance.now();
  const phases: Record<string, number> = {};
  return {
    phases,
    mark(phase: string) {
      phases[phase] = Math.round(performance.now() - t0);
    },
  };
}
