import { BotError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { ArtifactWriter, Definitions, ObjectCounts, Storage, TableCount } from '../../storage/index.ts';
import { withPgEnv } from '../connection.ts';
import { countObjects, countRows, tablesOnDisk } from '../counts.ts';
import { summarizeDefinitions } from '../definitions.ts';
import { dumpScopeArgs, type DumpScope } from '../dump-scope.ts';
import { clientFailure, type FailureContext } from '../failures.ts';
import { dumpToArtifact, type DumpedArtifact } from './artifact.ts';
import type { BackupSource } from './backup-source.ts';
import { BACKUP_CANCELED, throwIfCanceled } from './backup-failure.ts';
import { dumpGlobals, type GlobalsOutcome } from './globals.ts';
import type { Snapshot } from './snapshot.ts';

/** The database artifact's name; `database.pgdump.zst.age` when encrypted (the manifest names the file). */
export const DATABASE_FILE = 'database.pgdump.zst';
/** pg_dump's session time zone (PGTZ): timestamptz values in the archive are written in it. */
export const DUMP_TIME_ZONE = 'UTC';

/** The counts being taken in the snapshot, and the signal that stops the dump when they fail or the caller cancels. */
export interface Counting {
  counts: Promise<[TableCount[], ObjectCounts, Definitions | undefined]>;
  /** The dumped tables' size on disk (counts.ts tablesOnDisk), asked first on the connection; null if it failed. */
  tablesBytes: Promise<number | null>;
  dumpSignal: AbortSignal;
  /** Stops passing the caller's cancel on to `dumpSignal`, once the dump has ended. */
  stopForwarding(): void;
}

/**
 * Counting runs beside pg_dump, in the same exported snapshot: both read every table, and overlapping the two reads
 * costs far less than doing them one after the other (the counts still describe exactly what is dumped). Only what
 * pg_dump is told to take is counted (`scope`), or every restore test would miss the rest.
 */
export function startCounts(c: {
  snapshot: Snapshot;
  scope: DumpScope;
  ctx: FailureContext;
  signal?: AbortSignal | undefined;
  progress: (p: { phase: 'counting' }) => void;
  log?: Logger;
}): Counting {
  c.progress({ phase: 'counting' });
  const dumpAbort = new AbortController();
  const forwardAbort = () => dumpAbort.abort();
  c.signal?.addEventListener('abort', forwardAbort, { once: true });
  const { client } = c.snapshot;
  // First on the connection, so it answers in a round trip. If it fails, only the estimate is lost here, and the
  // counts fail with its error (a lock timeout, say, which aborts the transaction), not with a later one.
  const size = tablesOnDisk(client, c.scope);
  const tablesBytes = size.catch(() => null);
  // One query at a time on this connection, each after the one before (see summarizeDefinitions): a second query
  // sent while one runs only waits in pg's queue, and pg prints a deprecation warning for it on the user's terminal.
  const counts = size
    .then(async (): Promise<[TableCount[], ObjectCounts, Definitions | undefined]> => {
      const tables = await countRows(client, c.scope);
      const objects = await countObjects(client, c.scope);
      return [tables, objects, await summarizeDefinitions(client, c.scope, c.log)];
    })
    .catch((err: unknown) => {
      dumpAbort.abort();
      throw c.signal?.aborted ? new BotError('canceled', BACKUP_CANCELED) : clientFailure(err, c.ctx);
    });
  counts.catch(() => undefined); // awaited with the dump; never an unhandled rejection while the dump runs
  return { counts, tablesBytes, dumpSignal: dumpAbort.signal, stopForwarding: () => c.signal?.removeEventListener('abort', forwardAbort) };
}

/** What the snapshot gave: both artifacts written but not committed (`writers`), and the counts. */
export interface Dumped {
  database: DumpedArtifact;
  globals: GlobalsOutcome;
  tables: TableCount[];
  objects: ObjectCounts;
  /** Absent when the catalogs could not be read (the backup goes on without a summary). */
  definitions: Definitions | undefined;
  writers: ArtifactWriter[];
}

/**
 * `pg_dump --snapshot` into the database artifact and pg_dumpall's globals beside it, while the counts finish. The
 * snapshot is closed when this returns or throws; on failure whatever was written is aborted too.
 */
export async function dumpInSnapshot(d: {
  to: { storage: Storage; target: string; backupId: string };
  url: string;
  source: BackupSource;
  counting: Counting;
  scope: DumpScope;
  encryption: { recipients: string[] } | null;
  level: number;
  lockWaitMs: number;
  signal?: AbortSignal | undefined;
  progress: (p: { phase: 'dumping'; rawBytes?: number; bytes?: number; tablesBytes?: number }) => void;
  log: Logger;
}): Promise<Dumped> {
  const { snapshot, tools, zstd, ageEngine, readBack } = d.source;
  const { encryption, level } = d;
  // The dump stops on the caller's cancel and on a failed count.
  const dumpSignal = d.counting.dumpSignal;
  try {
    return await withPgEnv(d.url, async (env) => {
      // Every progress of the dump carries the tables' size once known (a first backup has no earlier one to say its
      // total by). Waited for briefly: a table locked by someone else holds the query, and the dump must not wait on it.
      let sized: { tablesBytes?: number } = {};
      const known = d.counting.tablesBytes.then((b) => {
        if (b !== null) sized = { tablesBytes: b };
      });
      await Promise.race([known, new Promise((r) => setTimeout(r, 250).unref())]);
      d.progress({ phase: 'dumping', rawBytes: 0, bytes: 0, ...sized });
      const dumping = dumpToArtifact({
        ...d.to,
        file: DATABASE_FILE,
        role: 'database',
        format: 'custom',
        level,
        command: tools.pgDump,
        // -Z0: zstd compresses (pg_dump ≤ 15 has only gzip, far slower). The database comes from PGDATABASE.
        args: ['-Fc', '-Z0', `--snapshot=${snapshot.snapshotId}`, `--lock-wait-timeout=${d.lockWaitMs}`, '--no-password', ...dumpScopeArgs(d.scope)],
        // One known time zone for timestamptz values, so a restore test can read the copy back alike (manifest).
        env: { ...env, PGTZ: DUMP_TIME_ZONE },
        zstd,
        encryption,
        ageEngine,
        readBackRecipient: readBack?.recipient,
        signal: dumpSignal,
        onProgress: (p) => d.progress({ phase: 'dumping', ...p, ...sized }),
      });
      // Roles and tablespaces beside the dump, not after it: pg_dumpall needs no snapshot, and its fraction of a
      // second would otherwise be added to every backup's wall time. Globals never fail a backup (globals.ts);
      // only a cancel — the caller's, or the dump signal after a failed count — stops them.
      const dumpingGlobals = dumpGlobals({
        ...d.to,
        superuser: snapshot.info.superuser,
        database: snapshot.info.name,
        pgDumpAll: tools.pgDumpAll,
        zstd,
        level,
        encryption,
        ageEngine,
        env,
        signal: dumpSignal,
        log: d.log,
      });
      const settled = await Promise.allSettled([d.counting.counts, dumping, dumpingGlobals]).finally(d.counting.stopForwarding);
      return await dumpedOrAborted(settled, d.signal);
    });
  } finally {
    // pg_dump is done with the snapshot: release it now rather than hold back vacuum during the rest.
    await snapshot.close();
  }
}

/**
 * The three results as one: counts and both artifacts, or the first failure after whatever was written is aborted. A
 * failed count stops the dump (through the dump signal) and is the error reported.
 */
async function dumpedOrAborted(
  [c, db, g]: [
    PromiseSettledResult<[TableCount[], ObjectCounts, Definitions | undefined]>,
    PromiseSettledResult<DumpedArtifact>,
    PromiseSettledResult<GlobalsOutcome>,
  ],
  signal: AbortSignal | undefined,
): Promise<Dumped> {
  const writers = [db.status === 'fulfilled' ? db.value.writer : null, g.status === 'fulfilled' ? g.value.dumped?.writer : null].filter(
    (w): w is ArtifactWriter => !!w,
  );
  try {
    throwIfCanceled(signal);
    if (c.status === 'rejected') throw c.reason;
    if (db.status === 'rejected') throw db.reason;
    if (g.status === 'rejected') throw g.reason;
    return { database: db.value, globals: g.value, tables: c.value[0], objects: c.value[1], definitions: c.value[2], writers };
  } catch (err) {
    await abortAll(writers);
    throw err;
  }
}

/** Each commit syncs its file and then the directory; the two artifacts need not wait for each other. */
export async function commitAll(writers: readonly ArtifactWriter[]): Promise<void> {
  await Promise.all(writers.map((w) => w.commit()));
}

/** Drops what the writers wrote, one after the other; a writer that cannot abort is left to discardUnfinished. */
export async function abortAll(writers: readonly ArtifactWriter[]): Promise<void> {
  for (const w of writers) await w.abort().catch(() => undefined);
}
