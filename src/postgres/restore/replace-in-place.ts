import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Archive, PgRestoreRun } from './archive.ts';
import { yieldCpu } from '../child-pipes.ts';
import { collectOutput } from '../output-tail.ts';
import { dbnameArg } from './restore-failure.ts';
import type { SelectionPlan } from './selection-plan.ts';

/**
 * Replaces the selected objects of an existing database, all or nothing.
 *
 * Not `pg_restore --clean --if-exists --single-transaction`: its clean step drops every listed entry one by
 * one, and on PostgreSQL 15 that fails for any partitioned table ("cannot drop inherited constraint
 * orders_2025_pkey of relation orders_2025") — a full `--clean --exit-on-error` restore of our realistic schema
 * into a copy of itself fails the same way. Instead one psql session, with ON_ERROR_STOP, runs:
 *   BEGIN; <the --clean statements of plan.dropListFile: tables, foreign keys pointing at them, a schema's other
 *   objects>; <`pg_restore --file=-` of the full list, data included>; COMMIT;
 * COMMIT is sent only once pg_restore has succeeded: if it fails, psql meets end of input inside the open
 * transaction and the server rolls everything back, so the database is left exactly as it was.
 */
export async function replaceInPlace(o: {
  archive: Archive;
  psql: string;
  plan: SelectionPlan;
  database: string;
  /** A private directory for the list files. */
  work: string;
  env: Record<string, string>;
  signal?: AbortSignal | undefined;
}): Promise<{ run: PgRestoreRun; tool: 'pg_restore' | 'psql' }> {
  const dropList = join(o.work, 'drop.list');
  const fullList = join(o.work, 'restore.list');
  await writeFile(dropList, o.plan.dropListFile, { mode: 0o600 });
  await writeFile(fullList, o.plan.listFile, { mode: 0o600 });
  const common = ['--file=-'];
  const drops = await o.archive.pgRestore(['--clean', '--if-exists', '--schema-only', `--use-list=${dropList}`, '--no-owner', '--no-acl', ...common], {
    env: o.env,
    captureStdout: true,
    partialRead: true,
  });
  if (!drops.ok || drops.canceled) return { run: drops, tool: 'pg_restore' };

  const psql = yieldCpu(
    execa(o.psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--no-password', '-f', '-', dbnameArg(o.database)], {
      ...(o.signal ? { cancelSignal: o.signal } : {}),
      forceKillAfterDelay: 5_000,
      reject: false,
      buffer: false,
      env: o.env,
      extendEnv: false,
      stdin: 'pipe',
      stdout: 'ignore',
      stderr: 'pipe',
    }),
  );
  const psqlErr = collectOutput(psql.stderr);
  // psql stops reading at its first error; what we still send then only meets a closed pipe.
  psql.stdin.on('error', () => undefined);
  // READ WRITE: a database whose settings make its sessions read-only (default_transaction_read_only) is overwritten
  // all the same, as the admin confirmed; its own setting stays as it is (QA).
  psql.stdin.write(`BEGIN READ WRITE;\n${cleanStatements(drops.stdout)}`);
  // With owners and grants: the objects come back into the database they were taken from, whose roles exist, and
  // an application role must not lose access to a table it could read before (a missing role fails the whole
  // transaction, leaving the database as it was).
  const restore = await o.archive.pgRestore([`--use-list=${fullList}`, ...common], { env: o.env, stdoutTo: psql.stdin });
  psql.stdin.end(restore.ok && !restore.canceled ? 'COMMIT;\n' : '');
  const p = await psql;
  const psqlRun: PgRestoreRun = {
    ok: !p.failed,
    canceled: Boolean(o.signal?.aborted || p.isCanceled),
    stderr: psqlErr.text(),
    stdout: '',
    exit: p.exitCode !== undefined ? `exit code ${p.exitCode}` : 'it did not start',
  };
  // psql's error is the cause when both fail: pg_restore then only lost its reader.
  if (!psqlRun.ok || psqlRun.canceled) return { run: psqlRun, tool: 'psql' };
  return { run: restore, tool: 'pg_restore' };
}

/**
 * The DROP part of a `pg_restore --clean --schema-only --file=-` script: everything before the first object's
 * `-- Name:` header (pg_restore writes all drops first). A `\restrict` key it set is released again, since the
 * script that follows sets its own.
 */
export function cleanStatements(script: string): string {
  const lines = script.split('\n');
  const first = lines.findIndex((l) => /^-- (Data for )?Name: /.test(l));
  const head = (first === -1 ? lines : lines.slice(0, first)).join('\n');
  const key = /^\\restrict (\S+)$/m.exec(head)?.[1];
  return `${head}\n${key ? `\\unrestrict ${key}\n` : ''}`;
}
