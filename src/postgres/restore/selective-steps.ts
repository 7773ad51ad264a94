import type { RestoreRecord } from '../../storage/index.ts';
import type { ArchiveReadOptions } from './archive.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BotError } from '../../errors.ts';
import { cleanBaseEnv, withPgEnv } from '../connection.ts';
import { type Archive, type ArchiveInput, UnreadableArchive } from './archive.ts';
import { runPgRestorePasses } from './parallel-restore.ts';
import { replaceInPlace } from './replace-in-place.ts';
import type { RestoreRun } from './restore-run.ts';
import { dbnameArg, judgeRestore, restoreFailure } from './restore-failure.ts';
import { applyDatabaseProperties, type DatabaseProperties, readDatabaseProperties } from './db-properties.ts';
import { countRestoredTables, type RestoredTable } from './restored-tables.ts';
import { createDatabase, databaseExists, databaseUrl, withMaintenanceClient as withClient } from './scratch.ts';
import { planSelection, type SelectionPlan } from './selection-plan.ts';
import { asOption } from '../../restore-scope.ts';
import { restoreJobs } from './stored-archive.ts';
import { parseToc } from './toc.ts';

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

/** The steps of a selective restore (selective-restore.ts runs them): each takes what the one before it gave. */

export type SelectiveRun = RestoreRun<SelectiveRestorePhase>;

export interface Planned {
  archive: Archive;
  plan: SelectionPlan;
}

/** Reads the archive's table of contents and plans exactly the entries to restore (selection-plan.ts). */
export async function planRestore(o: SelectiveRestoreOptions, r: SelectiveRun, archive: Archive): Promise<Planned> {
  // Reading the TOC needs no connection: a clean environment, no credentials.
  const env = cleanBaseEnv();
  const list = await archive.pgRestore(['--list'], { env, captureStdout: true, partialRead: true });
  const verbose = await archive.pgRestore(['--schema-only', '--verbose', '--file=-'], { env, captureStdout: true, partialRead: true });
  if (!list.ok || !verbose.ok) throw new UnreadableArchive(restoreFailure(list.ok ? verbose : list, r.ctx, r.database).problem);
  const plan = planSelection(parseToc(list.stdout, verbose.stdout), { tables: o.tables, schemas: o.schemas, mode: o.into.create ? 'new' : 'existing' });
  r.log.info({ entries: plan.ids.length, tables: plan.dataTables.length, input: archive.input }, 'selective restore planned');
  return { archive, plan };
}

/** The database restored into, created or found; `created` says whether it is ours to drop. */
export interface Target extends Planned {
  created: boolean;
  /** A new database's: its `ALTER DATABASE … SET` settings and comment, applied once the restore is done. */
  properties?: DatabaseProperties | null;
  method: { input: ArchiveInput; jobs: number };
}

export async function prepareTarget(o: SelectiveRestoreOptions, r: SelectiveRun, p: Planned): Promise<Target> {
  if (o.into.create) {
    // The source's locale and collation provider, as a whole restore has them (QA: an ICU database's tables came back
    // sorted by libc's C.UTF-8, and its settings and comment were gone).
    const properties = await readDatabaseProperties(p.archive, r.log);
    await createDatabase(o.serverUrl, r.database, properties?.createOptions);
    return { ...p, created: true, properties, method: { input: p.archive.input, jobs: restoreJobs(p.archive, o.jobs) } };
  } else if (!(await databaseExists(o.serverUrl, r.database))) {
    throw new BotError('pg_database_missing', `The database "${r.database}" does not exist on ${r.ctx.server}; restore into a new database instead.`);
  } else {
    await refuseDependents(databaseUrl(o.serverUrl, r.database), p.plan, r.database);
  }
  return { ...p, created: o.into.create, method: { input: p.archive.input, jobs: o.into.create ? restoreJobs(p.archive, o.jobs) : 1 } };
}

export interface Restored extends Target {
  restoreMs: number;
  /** Why the restore failed on the backup; null when it restored. */
  problem: string | null;
}

/** Into a new database: `pg_restore -L`; into an existing one: drop and recreate only the listed objects, all or nothing. */
export async function restoreSelection(o: SelectiveRestoreOptions, r: SelectiveRun, t: Target, psql: string, work: string): Promise<Restored> {
  if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled.');
  r.progress('restoring');
  const started = Date.now();
  const { run, tool } = await withPgEnv(databaseUrl(o.serverUrl, r.database), async (env) => {
    if (!o.into.create) return replaceInPlace({ archive: t.archive, psql, plan: t.plan, database: r.database, work, env, signal: o.signal });
    const listFile = join(work, 'restore.list');
    await writeFile(listFile, t.plan.listFile, { mode: 0o600 });
    // --no-owner/--no-acl: the restoring role owns what it restores; GRANTs to roles missing here cannot fail it.
    const args = ['--no-owner', '--no-acl', '--exit-on-error', '--no-password', `--use-list=${listFile}`, dbnameArg(r.database)];
    return { run: await runPgRestorePasses(t.archive, args, t.method.jobs, env), tool: 'pg_restore' as const };
  });
  const restoreMs = Date.now() - started + t.archive.decompressMs;
  const undone = o.into.create ? 'the new database was dropped' : 'its transaction was rolled back';
  const problem = judgeRestore(run, r.ctx, r.database, () => new BotError('canceled', `The restore into ${r.database} was canceled; ${undone}.`), tool);
  // After the restore, as a whole restore applies them: a setting such as default_transaction_read_only would stop it.
  if (problem === null && t.properties) {
    const notApplied = await applyDatabaseProperties(databaseUrl(o.serverUrl, r.database), r.database, t.properties, r.log, { owners: false });
    t.plan.notes.push(...notApplied);
  }
  return { ...t, restoreMs, problem: problem === null || o.into.create ? problem : `${problem}; ${r.database} was left as it was` };
}

export interface Counted {
  verifyMs: number;
  tables: RestoredTable[];
  /** Tables whose count differs from the one taken in the dump's snapshot. */
  problems: string[];
}

export async function countRestored(o: SelectiveRestoreOptions, r: SelectiveRun, plan: SelectionPlan): Promise<Counted> {
  r.progress('counting');
  const started = Date.now();
  const counted = await countRestoredTables(databaseUrl(o.serverUrl, r.database), plan.dataTables, o.manifest.verification.tables);
  return { verifyMs: Date.now() - started, ...counted };
}

/**
 * Replacing a table drops it first, and PostgreSQL refuses to drop a table a view or materialized view depends on
 * ("other objects depend on it") halfway through the transaction. Said before anything starts, with the list:
 * the views the restore does not recreate itself.
 */
async function refuseDependents(url: string, plan: SelectionPlan, database: string): Promise<void> {
  const replaced = plan.dataTables;
  const { dependents, others } = await withClient(url, async (c) => {
    const { rows } = await c.query<{ dependent: string; schema: string; on: string }>(
      `SELECT DISTINCT vn.nspname || '.' || v.relname AS dependent, vn.nspname AS schema, tn.nspname || '.' || t.relname AS on
       FROM pg_depend d
       JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace
       JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
       JOIN unnest($1::text[], $2::text[]) AS sel(s, n) ON sel.s = tn.nspname AND sel.n = t.relname
       WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND v.oid <> t.oid
       ORDER BY 1`,
      [replaced.map((t) => t.schema), replaced.map((t) => t.table)],
    );
    const dependents = rows.filter((r) => !plan.relations.includes(r.dependent));
    // What adding those schemas would overwrite besides: their other tables (QA: the advice, followed, overwrote a
    // table nobody had named, and what was written to it since the backup was lost).
    const schemas = [...new Set(dependents.map((d) => d.schema))];
    const tables = await c.query<{ name: string; schemaname: string; tablename: string }>(
      `SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS name, schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1::text[]) ORDER BY 1`,
      [schemas],
    );
    const chosen = new Set(replaced.map((t) => `${t.schema}\u0000${t.table}`));
    const others = tables.rows.filter((t) => !chosen.has(`${t.schemaname}\u0000${t.tablename}`)).map((t) => t.name);
    return { dependents, others };
  });
  if (dependents.length > 0) {
    const list = dependents.map((d) => `${d.dependent} (on ${d.on})`).join(', ');
    // The views' schemas, as the option takes them: a name that is not a plain lower-case one in double quotes.
    const schemas = [...new Set(dependents.map((d) => d.schema))].map((n) => `--schema=${asOption(n)}`).join(' ');
    const advice = `Replacing those tables in ${database} would drop what depends on them: ${list}. Restore the views with them (add ${schemas}: --table= names tables only)`;
    const named = `${others.slice(0, 10).join(', ')}${others.length > 10 ? ` and ${others.length - 10} more` : ''}`;
    throw new BotError(
      'bad_request',
      others.length
        ? `${advice}; that also overwrites ${named} with the backup's rows, losing what was written to them since. Or restore into a new database; nothing was changed.`
        : `${advice}, or restore into a new database; nothing was changed.`,
    );
  }
}
