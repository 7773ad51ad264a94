import type { RestoreRecord } from '../../storage/index.ts';
import type { AgeIdentity } from '../../crypto/age.ts';
import { type BotError, toUserMessage } from '../../errors.ts';
import { withPgEnv } from '../connection.ts';
import { clientFailure } from '../failures.ts';
import { type Archive, type ArchiveInput, type ArchiveReadOptions, databaseArtifact } from './archive.ts';
import { applyDatabaseProperties, type DatabaseProperties, ownerFirst, readDatabaseProperties } from './db-properties.ts';
import { checkIdentityOpensBackup } from './decryption.ts';
import { runPgRestorePasses } from './parallel-restore.ts';
import { describeProgress, watchRestore } from './restore-progress.ts';
import { dbnameArg, judgeRestore } from './restore-failure.ts';
import type { RestoreRun } from './restore-run.ts';
import { checkRestored, type SmokeQuery, type SmokeResult } from './restored-checks.ts';
import { createDatabase, databaseUrl, dropDatabase } from './scratch.ts';
import { amcheckRestored, compareWithArchive, type DeepCheck, deepProblems, type VerifyLevel } from '../verify/index.ts';
import { type Checksums, closeArchive, openStoredArchive, restoreJobs, restoreTools } from './stored-archive.ts';

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
  onProgress?: (p: { phase: RestoreTestPhase; detail?: string }) => void;
  /** How often the restoring phase reports how far it has come (default 5 s). */
  progressEveryMs?: number;
  /**
   * A full restore (`/restore <backup-id>`): the same steps and checks into this new database, which is kept when
   * everything passed and dropped when anything failed, so a database the bot leaves behind is one it verified.
   */
  keep?: { database: string } | undefined;
  /** Restore owners and grants (a replacement on the source's own server, whose roles exist); default: neither. */
  owners?: boolean | undefined;
  /** How deeply the restored copy is checked (verify/index.ts); default `content`. */
  verify?: VerifyLevel | undefined;
  /** What a problem says of a role the backup's objects name that the server lacks (workers/restore-test-roles.ts). */
  missingRole?: { server: string; fix: string } | undefined;
}

/** The record without what only the caller knows (who asked, the job) and the kind. */
export type RestoreTestOutcome = Omit<RestoreRecord, 'requestedBy' | 'jobId' | 'kind'>;

/** The phases of a restore test (restore-test.ts runs them): each takes what the one before it gave. */

/** What every phase of one test knows; its database is the scratch database. */
export type TestRun = RestoreRun<RestoreTestPhase> & { canceled: (cause?: unknown) => BotError };

/** The archive being decompressed beside the checksums, and the two ways it ends. */
export interface Decompression {
  archive: Promise<Archive>;
  /** Stops the decompression and removes what it wrote: the checksums decided against restoring, or failed. */
  abandon(): Promise<void>;
  /** Unlinks the caller's signal and removes the decompressed archive: pg_restore is done with it. */
  close(): Promise<void>;
}

/**
 * While the checksums are computed, the archive is decompressed into the private temp file: both read the stored
 * file, from disk once, and the checksums cost almost no wall time. `early` stops the decompression when a
 * checksum fails, and follows our caller's signal for all the archive's runs (pg_restore's too).
 */
export function decompress(o: RestoreTestOptions, t: TestRun, identity: AgeIdentity | undefined): Decompression {
  const early = new AbortController();
  const stopEarly = () => early.abort();
  o.signal?.addEventListener('abort', stopEarly, { once: true });
  const opening = (async () => {
    const tools = await restoreTools(o);
    // A wrong key fails here with one sentence; a damaged header too, but then the checksums speak first.
    await checkIdentityOpensBackup(o.manifest, o.storage, identity);
    return openStoredArchive(o, tools, { identity, signal: early.signal, log: t.log });
  })();
  opening.catch(() => undefined); // awaited by a later phase; never unhandled meanwhile
  const opened = () => opening.catch(() => undefined);
  return {
    archive: opening,
    abandon: async () => {
      early.abort();
      o.signal?.removeEventListener('abort', stopEarly);
      await (await opened())?.close().catch(() => undefined);
    },
    close: async () => {
      o.signal?.removeEventListener('abort', stopEarly);
      await closeArchive(await opened(), t.log);
    },
  };
}

/**
 * Nothing is restored — no scratch database even exists — before every checksum matches. A mismatch is the
 * verdict (restoring a corrupted artifact would only produce a more confusing one), so it stops the decompression.
 */
export async function checksumsFirst(checking: Promise<Checksums>, decompression: Decompression, stops: (sums: Checksums) => boolean): Promise<Checksums> {
  let sums: Checksums;
  try {
    sums = await checking;
  } catch (err) {
    await decompression.abandon();
    throw err;
  }
  if (stops(sums)) await decompression.abandon();
  return sums;
}

/** The archive with a scratch database created to restore it into: from here on, that database must be dropped. */
export interface Scratch {
  archive: Archive;
  method: { input: ArchiveInput; jobs: number };
  /** The source database's locale, settings and comment, as the archive has them (null: it has none). */
  properties: DatabaseProperties | null;
}

export async function createScratch(o: RestoreTestOptions, t: TestRun, archive: Archive): Promise<Scratch> {
  const properties = await readDatabaseProperties(archive, t.log);
  await createDatabase(o.serverUrl, t.database, properties?.createOptions);
  return { archive, method: { input: archive.input, jobs: restoreJobs(archive, o.jobs) }, properties };
}

export interface Restored {
  /** The RTO: decompression (overlapped with the checksums here, but part of any real restore) and pg_restore. */
  restoreMs: number;
  /** pg_restore's failure, when it says the backup is bad; null when it restored. */
  problem: string | null;
  /** Database settings that could not be applied to the restored copy (db-properties.ts). */
  settingProblems: string[];
}

export async function restore(o: RestoreTestOptions, t: TestRun, s: Scratch): Promise<Restored> {
  const started = Date.now();
  // --no-owner and --no-acl: restoring owners needs a superuser or a member of every owning role, and the scratch
  // server's roles are not the source's (on another server, names only: workers/restore-test-roles.ts); a failed ALTER
  // OWNER or GRANT would fail the test for no fault of the backup. --exit-on-error: a restore with SQL errors fails.
  const args = [...(o.owners ? [] : ['--no-owner', '--no-acl']), '--exit-on-error', '--no-password', dbnameArg(t.database)];
  const url = databaseUrl(o.serverUrl, t.database);
  if (o.owners && s.properties) await ownerFirst(url, t.database, s.properties, t.log);
  const reading = { bytesRead: () => s.archive.bytesRead(), total: databaseArtifact(o.manifest).rawBytes };
  const watch = watchRestore(url, o.manifest, reading, o.progressEveryMs ?? 5000, (p) => t.progress('restoring', describeProgress(p)), t.log);
  const run = await withPgEnv(url, (env) => runPgRestorePasses(s.archive, args, s.method.jobs, env)).finally(() => watch.stop());
  const restoreMs = s.archive.decompressMs + (Date.now() - started);
  t.log.info({ ...s.method, restoreMs, decompressMs: s.archive.decompressMs, ok: run.ok }, 'pg_restore finished');
  const problem = judgeRestore(run, t.ctx, t.database, () => t.canceled());
  // Before the comparison and the smoke queries: their connections start with the database's settings.
  const settingProblems =
    problem === null && s.properties ? await applyDatabaseProperties(url, t.database, s.properties, t.log, { owners: o.owners === true }) : [];
  return { restoreMs, problem, settingProblems };
}

export interface Compared {
  verifyMs: number;
  /** The comparison with the archive and pg_amcheck; null at level `counts`. */
  deep: DeepCheck | null;
  restoredBytes: number;
  tables: number;
  objects: string[];
  smokeQueries: SmokeResult[];
  /** Differences from the manifest's counts, then failed smoke queries. */
  problems: string[];
}

/**
 * The scratch database against its archive (content, definitions, large objects: before anything can write to
 * it), against the manifest's counts, the smoke queries, then pg_amcheck; and its size.
 */
export async function compare(o: RestoreTestOptions, t: TestRun, s: Scratch): Promise<Compared> {
  const started = Date.now();
  const url = databaseUrl(o.serverUrl, t.database);
  const level = o.verify ?? 'content';
  const failed = (err: unknown) => {
    throw o.signal?.aborted ? t.canceled(err) : clientFailure(err, t.ctx);
  };
  let deep: DeepCheck | null = null;
  let rendering: string | null = null;
  if (level !== 'counts') {
    const tools = await restoreTools(o);
    const v = {
      archive: s.archive,
      manifest: o.manifest,
      url,
      database: t.database,
      pgDump: tools.pgDump,
      pgDumpMajor: tools.major,
      owners: o.owners === true,
      signal: o.signal,
      log: t.log,
    };
    t.progress('verifying', 'comparing content and definitions with the archive');
    const comparing = compareWithArchive(v).catch((err: unknown) => {
      if (o.signal?.aborted) throw t.canceled(err);
      // The copy could not be read back: nothing may be claimed about it, and that is the verdict's to say.
      rendering = `content and definitions could not be compared with the backup: ${toUserMessage(err)}`;
      return { compared: false as const, why: rendering, ms: 0 };
    });
    // The counts read the copy beside the comparison (both only read it; the smoke queries, which may write, wait for
    // the comparison). pg_amcheck does not: it installs its extension, which the comparison would see.
    const [c, archive] = await Promise.all([
      counted(o, t, url, comparing).catch(async (err: unknown) => {
        await comparing.catch(() => undefined);
        return failed(err);
      }),
      comparing,
    ]);
    deep = { level, archive, amcheck: { ran: false, why: 'not run yet' } };
    t.progress('verifying', `pg_amcheck${level === 'full' ? ' --heapallindexed' : ''}`);
    deep.amcheck = await amcheckRestored({ ...v, level, keep: o.keep !== undefined });
    // pg_amcheck killed by a cancel says it did not run: a cancel, not a verdict (QA: a swap and a pass followed).
    if (o.signal?.aborted) throw t.canceled();
    return { ...c, deep, verifyMs: Date.now() - started, problems: [...c.problems, ...(rendering ? [rendering] : []), ...deepProblems(deep)] };
  }
  const c = await counted(o, t, url).catch(failed);
  return o.signal?.aborted ? failed(o.signal.reason) : { ...c, deep, verifyMs: Date.now() - started };
}

async function counted(o: RestoreTestOptions, t: TestRun, url: string, readOnlyUntil?: Promise<unknown>) {
  // Beside the comparison, its progress line ("comparing content …") stays: the counts say nothing of their own.
  const onPhase = (p: 'verifying' | 'smoke-queries') => (readOnlyUntil && p === 'verifying' ? undefined : t.progress(p));
  const c = await checkRestored({ url, manifest: o.manifest, smokeQueries: o.smokeQueries ?? [], signal: o.signal, onPhase, readOnlyUntil });
  return {
    restoredBytes: c.restoredBytes,
    tables: c.comparison.tables,
    objects: c.comparison.objects,
    smokeQueries: c.smokeQueries,
    problems: [...c.comparison.problems, ...c.smokeProblems],
  };
}

export interface Dropped {
  /** True while nothing is left on the server: nothing was created, or the drop succeeded. */
  dropped: boolean;
  problems: string[];
}

export const NOTHING_CREATED: Readonly<Dropped> = Object.freeze({ dropped: true, problems: [] });

export async function dropScratch(o: RestoreTestOptions, t: TestRun): Promise<Dropped> {
  t.progress('dropping');
  try {
    await dropDatabase(o.serverUrl, t.database);
    return { dropped: true, problems: [] };
  } catch (err) {
    t.log.error({ err }, 'could not drop the scratch database');
    // The verdict is final only after the drop: a scratch copy left on the server is a problem to fix.
    return { dropped: false, problems: [`scratch database ${t.database} could not be dropped (${toUserMessage(err)}); drop it by hand`] };
  }
}
