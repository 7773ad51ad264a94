import { readFileSync } from 'node:fs';
import { safeProgress } from '../progress.ts';
import type { TargetConfig } from '../../config.ts';
import { BotError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { BackupKind, Manifest, RetentionClass } from '../../storage/index.ts';
import type { ArtifactWriter, BackupOwner, Storage } from '../../storage/index.ts';
import { findAgeEngine } from '../../crypto/age-cli.ts';
import { dumpToArtifact } from './artifact.ts';
import { backupEncryption, readBackEncrypted, readBackKey, type BackupEncryptionOption } from './backup-encryption.ts';
import { reserveBackupId } from '../../storage/index.ts';
import { serverLabel, withPgEnv } from '../connection.ts';
import { countObjects, countRows } from '../counts.ts';
import { dumpScopeArgs, isWholeDatabase, type DumpScope } from '../dump-scope.ts';
import { BACKUP_CANCELED, toBotError } from './backup-failure.ts';
import { clientFailure, type FailureContext } from '../failures.ts';
import { dumpGlobals } from './globals.ts';
import { openSnapshot, serverMajor, type Snapshot } from './snapshot.ts';
import { findPgTools, findZstd } from '../tools.ts';
import { findNativeTools } from './native-pipe.ts';
import { verifyArtifact, type VerifyMode } from './verify.ts';

/** The database artifact's name; `database.pgdump.zst.age` when encrypted (the manifest names the file). */
export const DATABASE_FILE = 'database.pgdump.zst';

export interface BackupProgress {
  phase: 'connecting' | 'counting' | 'dumping' | 'committing';
  /** Bytes pg_dump has produced so far (an estimate while dumping). */
  rawBytes?: number;
  /** Compressed bytes stored so far. */
  bytes?: number;
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

const CANCELED = BACKUP_CANCELED;

let version: string | undefined;

/** Our package.json's version, found upward from this module (src/postgres/backup, dist/postgres/backup or dist/bundle). */
function toolVersion(): string {
  if (version !== undefined) return version;
  version = '0.0.0';
  for (let dir = new URL('./', import.meta.url); dir.pathname !== '/'; dir = new URL('../', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pg-backup-bot') {
        version = pkg.version ?? version;
        break;
      }
    } catch {
      // No package.json here, or not ours (dist/bundle has a bare one): look further up.
    }
  }
  return version;
}

/**
 * One backup: reserve the directory, export a snapshot and count in it, `pg_dump --snapshot` through zstd into
 * storage, globals, read the artifact back, and only then write the manifest. On any failure nothing is left
 * behind and the error says what happened in one sentence.
 */
export async function runBackup(o: RunBackupOptions): Promise<Manifest> {
  const now = o.now ?? (() => new Date());
  const startedAt = o.startedAt ?? now();
  // Where the time went, in the 'backup written' log line (milliseconds since runBackup was called).
  const t0 = performance.now();
  const phases: Record<string, number> = {};
  const mark = (phase: string) => (phases[phase] = Math.round(performance.now() - t0));

  const ctx: FailureContext = { tool: 'pg_dump', server: serverLabel(o.target.url), storage: o.storage.describe() };
  // The backup id (and its logger) comes from the reservation below; a throwing callback is logged without it.
  const progress = safeProgress(o.onProgress, o.log);
  if (o.signal?.aborted) throw new BotError('canceled', CANCELED);
  // Before anything is reserved or dumped: an unencrypted production backup is refused outright.
  const encryption = backupEncryption(o.target, o.encryption);
  // The preferred id may be taken by a backup started in the same second: the reserved one can carry a suffix.
  const backupId = await reserveBackupId(o.storage, o.target.name, o.backupId, undefined, o.owner);
  const log = o.log.child({ backupId });
  const writers: ArtifactWriter[] = [];
  const lockWait = o.lockWaitTimeoutMs ?? 5 * 60_000;
  let snapshot: Snapshot | undefined;
  // Ending the connection is the only way to interrupt a running count(*) (a ROLLBACK would queue behind it).
  const onAbort = () => void snapshot?.client.end().catch(() => undefined);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  // Tools that do not depend on the server's version are found while the snapshot is opened. The read-back key
  // lives in memory only, for this backup (backup-encryption.ts): the worker keeps no secret key.
  const preparing = Promise.all([
    findZstd(o.zstdPath),
    // Probed once per process (tee and a SHA-256 command); found now, the dump's pipeline starts without a wait.
    findNativeTools(),
    encryption ? findAgeEngine(o.agePath) : undefined,
    encryption ? readBackKey() : undefined,
  ]);
  preparing.catch(() => undefined); // awaited below; never unhandled meanwhile
  try {
    await o.onReserved?.(backupId);
    progress({ phase: 'connecting' });
    snapshot = await openSnapshot(o.target.url, { lockTimeoutMs: lockWait }).catch((err: unknown) => {
      throw clientFailure(err, ctx);
    });
    const snap = snapshot;
    if (o.signal?.aborted) throw new BotError('canceled', CANCELED);
    const tools = await findPgTools({ serverMajor: serverMajor(snap.info.serverVersionNum), pgBinDir: o.pgBinDir });
    const [zstd, , ageEngine, readBack] = await preparing;
    mark('snapshot');
    log.info({ pgDump: tools.pgDump, server: snap.info.serverVersion, snapshot: snap.snapshotId, encryption: ageEngine?.kind ?? 'none' }, 'snapshot exported');

    // Counting runs beside pg_dump, in the same exported snapshot: both read every table, and overlapping the two
    // reads costs far less than doing them one after the other (the counts still describe exactly what is dumped).
    progress({ phase: 'counting' });
    const dumpAbort = new AbortController();
    const forwardAbort = () => dumpAbort.abort();
    o.signal?.addEventListener('abort', forwardAbort, { once: true });
    // Only what pg_dump is told to take (target.schemas, target.excludeTables), or every restore test would miss the rest.
    const scope: DumpScope = { schemas: o.target.schemas, excludeTables: o.target.excludeTables };
    const counting = Promise.all([countRows(snap.client, scope), countObjects(snap.client, scope)]).catch((err: unknown) => {
      dumpAbort.abort();
      throw o.signal?.aborted ? new BotError('canceled', CANCELED) : clientFailure(err, ctx);
    });
    counting.catch(() => undefined); // observed below; never an unhandled rejection while the dump runs

    const { database, globals, tables, objects } = await withPgEnv(o.target.url, async (env) => {
      progress({ phase: 'dumping', rawBytes: 0, bytes: 0 });
      const dumping = dumpToArtifact({
        storage: o.storage,
        target: o.target.name,
        backupId: backupId,
        file: DATABASE_FILE,
        role: 'database',
        format: 'custom',
        level: o.compressionLevel,
        command: tools.pgDump,
        // -Z0: zstd compresses (pg_dump ≤ 15 has only gzip, far slower). The database comes from PGDATABASE.
        args: ['-Fc', '-Z0', `--snapshot=${snap.snapshotId}`, `--lock-wait-timeout=${lockWait}`, '--no-password', ...dumpScopeArgs(scope)],
        env,
        zstd,
        encryption,
        ageEngine,
        readBackRecipient: readBack?.recipient,
        signal: dumpAbort.signal,
        onProgress: (p) => progress({ phase: 'dumping', ...p }),
      });
      // Roles and tablespaces beside the dump, not after it: pg_dumpall needs no snapshot, and its fraction of a
      // second would otherwise be added to every backup's wall time. Globals never fail a backup (globals.ts);
      // only a cancel — ours, or dumpAbort after a failed count — stops them.
      const dumpingGlobals = dumpGlobals({
        storage: o.storage,
        target: o.target.name,
        backupId: backupId,
        superuser: snap.info.superuser,
        database: snap.info.name,
        pgDumpAll: tools.pgDumpAll,
        zstd,
        level: o.compressionLevel,
        encryption,
        ageEngine,
        env,
        signal: dumpAbort.signal,
        log,
      });
      const [c, d, g] = await Promise.allSettled([counting, dumping, dumpingGlobals]).finally(() => o.signal?.removeEventListener('abort', forwardAbort));
      // Whatever was written is aborted by the catch below if anything failed.
      if (d.status === 'fulfilled') writers.push(d.value.writer);
      if (g.status === 'fulfilled' && g.value.dumped) writers.push(g.value.dumped.writer);
      if (o.signal?.aborted) throw new BotError('canceled', CANCELED);
      // A failed count stops the dump (through dumpAbort) and is the error reported.
      if (c.status === 'rejected') throw c.reason;
      if (d.status === 'rejected') throw d.reason;
      if (g.status === 'rejected') throw g.reason;
      const [tables, objects] = c.value;
      const db = d.value;
      // pg_dump is done with the snapshot: release it now rather than hold back vacuum during the rest.
      await snap.close();
      return { database: db, globals: g.value, tables, objects };
    });

    mark('dumped');
    progress({ phase: 'committing' });
    // Each commit syncs its file and then the directory; the two artifacts need not wait for each other.
    await Promise.all(writers.map((w) => w.commit()));
    mark('committed');
    const file = database.artifact.file;
    // Without zstd's summary the raw size comes from reading everything back.
    const mode: VerifyMode = database.artifact.rawBytes === null ? 'full' : (o.verify ?? 'list');
    const verify = { zstd, pgRestore: tools.pgRestore, mode, signal: o.signal };
    const checked = readBack
      ? await readBackEncrypted({ ...verify, storage: o.storage, target: o.target.name, backupId, file, identity: readBack.identity })
      : await verifyArtifact({ ...verify, source: await o.storage.openArtifact(o.target.name, backupId, file) });
    mark('verified');
    const rawBytes = database.artifact.rawBytes ?? checked.rawBytes ?? 0;
    const artifacts = [{ ...database.artifact, rawBytes }];
    if (globals.dumped) artifacts.push({ ...globals.dumped.artifact, rawBytes: globals.dumped.artifact.rawBytes ?? 0 });
    if (o.signal?.aborted) throw new BotError('canceled', CANCELED);
    const finishedAt = now();
    const manifest: Manifest = {
      formatVersion: 1,
      backupId: backupId,
      target: o.target.name,
      kind: o.kind,
      retentionClass: o.retentionClass,
      retainUntil: o.retainUntil ? o.retainUntil.toISOString() : null,
      requestedBy: o.requestedBy,
      jobId: o.jobId,
      label: o.label,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: Math.max(0, finishedAt.getTime() - startedAt.getTime()),
      database: {
        name: snap.info.name,
        serverVersion: snap.info.serverVersion,
        serverVersionNum: snap.info.serverVersionNum,
        pgDumpVersion: tools.version,
        sizeBytes: snap.info.sizeBytes,
      },
      snapshotId: snap.snapshotId,
      artifacts,
      globals: globals.globals,
      verification: { tables, objects },
      ...(isWholeDatabase(scope) ? {} : { scope }),
      tool: { name: 'pg-backup-bot', version: toolVersion() },
    };
    // Written last: from this moment on the backup exists.
    await o.storage.writeManifest(manifest);
    mark('manifest');
    log.info({ bytes: rawBytes, tocEntries: checked.tocEntries, ms: manifest.durationMs, phases }, 'backup written');
    return manifest;
  } catch (err) {
    const failure = toBotError(err, ctx, o.signal);
    log.warn({ err, code: failure.code }, 'backup failed; discarding what was written');
    for (const w of writers) await w.abort().catch(() => undefined);
    await snapshot?.close();
    await o.storage.discardUnfinished(o.target.name, backupId).catch((e: unknown) => log.error({ err: e }, 'could not discard the unfinished backup'));
    throw failure;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
  }
}
