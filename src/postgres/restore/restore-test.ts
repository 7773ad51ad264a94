import { BotError, toUserMessage } from '../../errors.ts';
import { safeProgress } from '../progress.ts';
import type { Manifest } from '../../storage/index.ts';
import { newRecordId, recordHead, type RestoreRecord } from '../../storage/index.ts';
import { openArchive, UnreadableArchive, type Archive, type ArchiveReadOptions } from './archive.ts';
import { verifyChecksums } from './checksums.ts';
import { checkIdentityOpensBackup, identityFor } from './decryption.ts';
import { clientFailure, type FailureContext } from '../failures.ts';
import { serverLabel, withPgEnv } from '../connection.ts';
import { runPgRestorePasses } from './parallel-restore.ts';
import { dbnameArg, restoreFailure } from './restore-failure.ts';
import { checkRestored, type SmokeQuery } from './restored-checks.ts';
import { createDatabase, databaseUrl, dropDatabase, scratchName } from './scratch.ts';
import { findPgTools, findZstd, parsePgDumpVersion } from '../tools.ts';

export type RestoreTestPhase = 'verifying-checksums' | 'restoring' | 'verifying' | 'smoke-queries' | 'dropping';

export interface RestoreTestOptions extends ArchiveReadOptions {
  /** Where scratch databases are created: a role with CREATEDB; its own database is the maintenance db. */
  serverUrl: string;
  /** Names the scratch database (`pgbb_rt_` + sha256(key)); a job id, so leftovers can be told from live tests. */
  scratchKey: string;
  /** Whose scratch databases these are (the queue prefix): cleanup never touches another deployment's. */
  scratchScope?: string;
  /** pg_restore -j (default 2); only when the archive could be decompressed to a file. */
  jobs?: number;
  smokeQueries?: SmokeQuery[];
  onProgress?: (p: { phase: RestoreTestPhase }) => void;
}

/** The record without what only the caller knows (who asked, the job) and the kind. */
export type RestoreTestOutcome = Omit<RestoreRecord, 'requestedBy' | 'jobId' | 'kind'>;

/** pg_restore must be at least as new as the pg_dump that wrote the archive. */
export function dumpMajor(m: Manifest): number {
  return parsePgDumpVersion(m.database.pgDumpVersion) ?? Math.floor(m.database.serverVersionNum / 10000);
}

/**
 * Proves a backup restores: checksums first, then a full restore into a fresh scratch database, an exact
 * comparison with the counts taken in the dump's snapshot, the smoke queries, and always a drop. Problems with
 * the backup come back as sentences in the outcome; an infrastructure failure (server unreachable, no
 * CREATEDB, a cancel) throws a BotError, after dropping what was created.
 */
export async function runRestoreTest(o: RestoreTestOptions): Promise<RestoreTestOutcome> {
  const now = o.now ?? (() => new Date());
  const startedAt = now();
  const m = o.manifest;
  const name = scratchName(o.scratchKey, o.scratchScope);
  const log = o.log.child({ backupId: m.backupId, scratch: name });
  const ctx: FailureContext = { tool: 'pg_restore', server: serverLabel(o.serverUrl) };
  const canceled = (cause?: unknown) =>
    new BotError('canceled', `The restore test of ${m.backupId} was canceled; its scratch database ${name} was dropped.`, { cause });
  const report = safeProgress(o.onProgress, log);
  const progress = (phase: RestoreTestPhase) => report({ phase });
  const problems: string[] = [];
  const checked: RestoreTestOutcome['checked'] = { checksums: [], tables: 0, objects: [], smokeQueries: [] };
  let restoreMs = 0;
  let verifyMs = 0;
  let restoredBytes: number | null = null;
  let restoreMethod: RestoreTestOutcome['restoreMethod'] = null;
  // True while nothing may be left on the server: before creation, and after a successful drop.
  let dropped = true;
  const outcome = (): RestoreTestOutcome => {
    return {
      ...recordHead(m, startedAt, now()),
      id: newRecordId(startedAt),
      restoreMs,
      verifyMs,
      restoredBytes,
      passed: problems.length === 0,
      checked,
      problems,
      database: name,
      dropped,
      selection: null,
      correctiveActions: null,
      restoreMethod,
    };
  };

  if (o.signal?.aborted) throw canceled(o.signal.reason);
  // A missing or unreadable identity file stops the test before gigabytes are read for the checksums.
  const identity = await identityFor(m, o.identityFile);
  progress('verifying-checksums');
  const t0 = Date.now();
  const checking = verifyChecksums({ manifest: m, storage: o.storage, signal: o.signal }).then((sums) => {
    verifyMs += Date.now() - t0;
    return sums;
  });
  checking.catch(() => undefined); // awaited below; never unhandled meanwhile
  // While the checksums are computed, the archive is decompressed into the private temp file: both read the stored
  // file, from disk once, and the checksums cost almost no wall time. Nothing is restored — no scratch database
  // even exists — before every checksum matches; a mismatch stops the decompression and is the verdict.
  // `early` stops the decompression when a checksum fails, and follows our caller's signal for all the archive runs.
  const early = new AbortController();
  const stopEarly = () => early.abort();
  o.signal?.addEventListener('abort', stopEarly, { once: true });
  const opening = (async () => {
    const tools = await findPgTools({ serverMajor: dumpMajor(m), pgBinDir: o.pgBinDir });
    const zstd = await findZstd(o.zstdPath);
    // A wrong key fails here with one sentence; a damaged header too, but then the checksums speak first (below).
    await checkIdentityOpensBackup(m, o.storage, identity);
    return openArchive({
      manifest: m,
      storage: o.storage,
      zstd,
      pgRestore: tools.pgRestore,
      tempDir: o.tempDir,
      input: o.input,
      signal: early.signal,
      identity,
      agePath: o.agePath,
      log,
    });
  })();
  opening.catch(() => undefined);
  // The checksums decided against restoring (or could not be read): stop and remove the decompression.
  const abandon = async () => {
    early.abort();
    o.signal?.removeEventListener('abort', stopEarly);
    await (await opening.catch(() => undefined))?.close().catch(() => undefined);
  };
  let sums: Awaited<typeof checking>;
  try {
    sums = await checking;
  } catch (err) {
    await abandon();
    throw err;
  }
  checked.checksums = sums.checksums;
  if (sums.problems.length > 0) {
    // A corrupted artifact is the verdict; restoring it would only produce a more confusing one.
    await abandon();
    problems.push(...sums.problems);
    log.warn({ problems }, 'restore test failed: checksum mismatch');
    return outcome();
  }

  progress('restoring');
  let archive: Archive | undefined;
  let failure: unknown;
  try {
    archive = await opening;
    await createDatabase(o.serverUrl, name);
    dropped = false;
    const tRestore = Date.now();
    const jobs = archive.input === 'file' ? Math.max(1, Math.floor(o.jobs ?? 2)) : 1;
    restoreMethod = { input: archive.input, jobs };
    const a = archive;
    // --no-owner and --no-acl: the scratch server need not have the source's roles (they live in globals.sql,
    // which a test must not apply to a shared server), and a GRANT to a missing role would fail the test for a
    // reason that says nothing about the backup. --exit-on-error: a restore with SQL errors is not a pass.
    const args = ['--no-owner', '--no-acl', '--exit-on-error', '--no-password', dbnameArg(name)];
    const run = await withPgEnv(databaseUrl(o.serverUrl, name), (env) => runPgRestorePasses(a, args, jobs, env));
    // The RTO: decompression (overlapped with the checksums here, but part of any real restore) and pg_restore.
    restoreMs = archive.decompressMs + (Date.now() - tRestore);
    log.info({ ...restoreMethod, restoreMs, decompressMs: archive.decompressMs, ok: run.ok }, 'pg_restore finished');
    if (run.canceled) throw canceled();
    if (!run.ok) {
      const f = restoreFailure(run, ctx, name);
      if (f.infrastructure) throw f.infrastructure;
      problems.push(f.problem);
    } else {
      const tVerify = Date.now();
      const c = await checkRestored({
        url: databaseUrl(o.serverUrl, name),
        manifest: m,
        smokeQueries: o.smokeQueries ?? [],
        signal: o.signal,
        onPhase: progress,
      }).catch((err: unknown) => {
        throw o.signal?.aborted ? canceled(err) : clientFailure(err, ctx);
      });
      verifyMs += Date.now() - tVerify;
      restoredBytes = c.restoredBytes;
      checked.tables = c.comparison.tables;
      checked.objects = c.comparison.objects;
      checked.smokeQueries = c.smokeQueries;
      problems.push(...c.comparison.problems, ...c.smokeProblems);
    }
  } catch (err) {
    if (err instanceof UnreadableArchive) problems.push(err.problem);
    else failure = o.signal?.aborted ? canceled(err) : err;
  } finally {
    // pg_restore runs under `early` too (openArchive's signal), so the link holds until here.
    o.signal?.removeEventListener('abort', stopEarly);
    await archive?.close().catch((err: unknown) => log.warn({ err }, 'could not remove the decompressed archive'));
    if (!dropped) {
      progress('dropping');
      try {
        await dropDatabase(o.serverUrl, name);
        dropped = true;
      } catch (err) {
        log.error({ err }, 'could not drop the scratch database');
        // The verdict is final only after the drop: a scratch copy left on the server is a problem to fix.
        problems.push(`scratch database ${name} could not be dropped (${toUserMessage(err)}); drop it by hand`);
      }
    }
  }
  if (failure !== undefined) {
    if (!dropped) log.error({ scratch: name }, 'scratch database left behind after a failure');
    throw failure instanceof BotError ? failure : clientFailure(failure, ctx);
  }
  const result = outcome();
  log.info({ passed: result.passed, restoreMs, verifyMs, restoredBytes, problems: problems.length }, 'restore test finished');
  return result;
}
