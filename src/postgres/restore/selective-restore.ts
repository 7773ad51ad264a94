import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { safeProgress } from '../progress.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BotError } from '../../errors.ts';
import { recordHead, type RestoreRecord } from '../../storage/index.ts';
import { openArchive, UnreadableArchive, type Archive, type ArchiveReadOptions } from './archive.ts';
import { verifyChecksums } from './checksums.ts';
import { checkIdentityOpensBackup, identityFor } from './decryption.ts';
import { cleanBaseEnv, serverLabel, withPgEnv } from '../connection.ts';
import { clientFailure, type FailureContext } from '../failures.ts';
import { runPgRestorePasses } from './parallel-restore.ts';
import { dbnameArg, restoreFailure } from './restore-failure.ts';
import { countRestoredTables, type RestoredTable } from './restored-tables.ts';
import { dumpMajor } from './restore-test.ts';
import { createDatabase, databaseExists, databaseUrl, dropDatabase, isScratchName } from './scratch.ts';
import { replaceInPlace } from './replace-in-place.ts';
import { planSelection } from './selection-plan.ts';
import { parseToc } from './toc.ts';
import { findPgTools, findZstd } from '../tools.ts';

export type SelectiveRestorePhase = 'verifying-checksums' | 'planning' | 'restoring' | 'counting';

export interface SelectiveRestoreOptions extends ArchiveReadOptions {
  /** The server to restore on; its own database is the maintenance db for CREATE DATABASE. */
  serverUrl: string;
  /** `name` or `schema.name` (quote names with dots or capitals). */
  tables: string[];
  schemas: string[];
  /** create: a new database (must not exist); else an existing one whose selected objects are replaced. */
  into: { database: string; create: boolean };
  /** pg_restore -j into a new database (default 2); a restore into an existing one is one transaction, one job. */
  jobs?: number;
  onProgress?: (p: { phase: SelectiveRestorePhase }) => void;
}

/** Record-like: what the caller stores, plus the restored tables and notes on what was left out on purpose. */
export type SelectiveRestoreOutcome = Omit<RestoreRecord, 'requestedBy' | 'jobId' | 'kind' | 'id'> & {
  restoredTables: RestoredTable[];
  notes: string[];
};

/**
 * Restores chosen tables or schemas of a backup: checksums first, then exactly the planned archive entries
 * (see selection-plan.ts) through `pg_restore -L`. Into a new database it runs in parallel and the database is
 * dropped again if the restore fails; into an existing one the selected objects are dropped and recreated in
 * one transaction (replace-in-place.ts), so a failure anywhere leaves that database as it was.
 */
export async function runSelectiveRestore(o: SelectiveRestoreOptions): Promise<SelectiveRestoreOutcome> {
  const now = o.now ?? (() => new Date());
  const startedAt = now();
  const m = o.manifest;
  const db = o.into.database;
  const log = o.log.child({ backupId: m.backupId, into: db, create: o.into.create });
  const ctx: FailureContext = { tool: 'pg_restore', server: serverLabel(o.serverUrl) };
  const report = safeProgress(o.onProgress, log);
  const progress = (phase: SelectiveRestorePhase) => report({ phase });
  if (!db || Buffer.byteLength(db) > 63 || isScratchName(db)) {
    throw new BotError('bad_request', `"${db}" cannot be restored into: a database name has 1–63 bytes and must not be a restore-test scratch name.`);
  }
  const problems: string[] = [];
  const notes: string[] = [];
  let restoredTables: RestoredTable[] = [];
  let restoreMs = 0;
  let verifyMs = 0;
  let created = false;
  let dropped = false;
  let restoreFailed = false;
  let restoreMethod: SelectiveRestoreOutcome['restoreMethod'] = null;
  let checksums: SelectiveRestoreOutcome['checked']['checksums'] = [];
  const outcome = (): SelectiveRestoreOutcome => {
    return {
      ...recordHead(m, startedAt, now()),
      restoreMs,
      verifyMs,
      restoredBytes: null,
      passed: null,
      checked: { checksums, tables: restoredTables.length, objects: [], smokeQueries: [] },
      problems,
      database: db,
      dropped,
      selection: { tables: o.tables, schemas: o.schemas, into: o.into.create ? null : db, created },
      correctiveActions: null,
      restoreMethod,
      restoredTables,
      notes,
    };
  };

  if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled before it started; nothing was changed.');
  const identity = await identityFor(m, o.identityFile);
  progress('verifying-checksums');
  const t0 = Date.now();
  const sums = await verifyChecksums({ manifest: m, storage: o.storage, signal: o.signal });
  verifyMs += Date.now() - t0;
  checksums = sums.checksums;
  if (sums.problems.length > 0) {
    problems.push(...sums.problems, 'nothing was restored');
    return outcome();
  }

  // Checksums passed, so the stored header is intact: a failure to open it now means the key is wrong.
  await checkIdentityOpensBackup(m, o.storage, identity);
  const tools = await findPgTools({ serverMajor: dumpMajor(m), pgBinDir: o.pgBinDir });
  const zstd = await findZstd(o.zstdPath);
  const work = await mkdtemp(join(o.tempDir ?? tmpdir(), 'pgbb-select-'));
  let archive: Archive | undefined;
  let failure: unknown;
  try {
    progress('planning');
    archive = await openArchive({
      manifest: m,
      storage: o.storage,
      zstd,
      pgRestore: tools.pgRestore,
      tempDir: o.tempDir,
      input: o.input,
      signal: o.signal,
      identity,
      agePath: o.agePath,
      log,
    });
    const a = archive;
    // Reading the TOC needs no connection: a clean environment, no credentials.
    const env = cleanBaseEnv();
    const [list, verbose] = [
      await a.pgRestore(['--list'], { env, captureStdout: true, partialRead: true }),
      await a.pgRestore(['--schema-only', '--verbose', '--file=-'], { env, captureStdout: true, partialRead: true }),
    ];
    if (!list.ok || !verbose.ok) throw new UnreadableArchive(restoreFailure(list.ok ? verbose : list, ctx, db).problem);
    const plan = planSelection(parseToc(list.stdout, verbose.stdout), { tables: o.tables, schemas: o.schemas, mode: o.into.create ? 'new' : 'existing' });
    notes.push(...plan.notes);
    log.info({ entries: plan.ids.length, tables: plan.dataTables.length, input: a.input }, 'selective restore planned');

    if (o.into.create) {
      await createDatabase(o.serverUrl, db);
      created = true;
    } else if (!(await databaseExists(o.serverUrl, db))) {
      throw new BotError('pg_database_missing', `The database "${db}" does not exist on ${ctx.server}; restore into a new database instead.`);
    }
    if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled.');
    progress('restoring');
    const jobs = o.into.create && a.input === 'file' ? Math.max(1, Math.floor(o.jobs ?? 2)) : 1;
    restoreMethod = { input: a.input, jobs };
    const tRestore = Date.now();
    const { run, tool } = await withPgEnv(databaseUrl(o.serverUrl, db), async (childEnv) => {
      // Into an existing database: drop and recreate only the listed objects, all or nothing.
      if (!o.into.create) return replaceInPlace({ archive: a, psql: tools.psql, plan, database: db, work, env: childEnv, signal: o.signal });
      const listFile = join(work, 'restore.list');
      await writeFile(listFile, plan.listFile, { mode: 0o600 });
      // --no-owner/--no-acl: the restoring role owns what it restores; GRANTs to roles missing here cannot fail it.
      const args = ['--no-owner', '--no-acl', '--exit-on-error', '--no-password', `--use-list=${listFile}`, dbnameArg(db)];
      return { run: await runPgRestorePasses(a, args, jobs, childEnv), tool: 'pg_restore' };
    });
    restoreMs = Date.now() - tRestore + a.decompressMs;
    if (run.canceled)
      throw new BotError(
        'canceled',
        `The restore into ${db} was canceled; ${o.into.create ? 'the new database was dropped' : 'its transaction was rolled back'}.`,
      );
    if (!run.ok) {
      const f = restoreFailure(run, ctx, db, tool);
      if (f.infrastructure) throw f.infrastructure;
      restoreFailed = true;
      problems.push(o.into.create ? f.problem : `${f.problem}; ${db} was left as it was`);
    } else {
      progress('counting');
      const tCount = Date.now();
      const counted = await countRestoredTables(databaseUrl(o.serverUrl, db), plan.dataTables, m.verification.tables);
      verifyMs += Date.now() - tCount;
      restoredTables = counted.tables;
      problems.push(...counted.problems);
    }
  } catch (err) {
    if (err instanceof UnreadableArchive) {
      restoreFailed = true;
      problems.push(err.problem, 'nothing was restored');
    } else failure = o.signal?.aborted ? new BotError('canceled', `The restore into ${db} was canceled; nothing was kept.`, { cause: err }) : err;
  } finally {
    await archive?.close().catch((err: unknown) => log.warn({ err }, 'could not remove the decompressed archive'));
    await rm(work, { recursive: true, force: true });
    // A half-restored new database only confuses: it is ours, so it goes. One restored with a count that
    // differs from the manifest stays: its data may still be what someone needs, and the problem says so.
    if (created && (failure !== undefined || restoreFailed)) {
      await dropDatabase(o.serverUrl, db).then(
        () => (dropped = true),
        (err: unknown) => log.error({ err }, 'could not drop the database of a failed restore'),
      );
    }
  }
  if (failure !== undefined) throw failure instanceof BotError ? failure : clientFailure(failure, ctx);
  log.info({ restoreMs, tables: restoredTables.length, problems: problems.length }, 'selective restore finished');
  return outcome();
}
