import { BotError } from '../../errors.ts';
import type { PgRestoreRun } from './archive.ts';
import { classifyFailure, firstErrorLine, type FailureContext } from '../failures.ts';

/**
 * A failed pg_restore is either a verdict on the backup (a sentence in the record: the archive or its SQL is
 * bad) or a sign the restore could not run at all (server unreachable, wrong password, a full disk on the
 * server): those throw, because a test that never ran must not read as "the backup is broken".
 */
export function restoreFailure(run: PgRestoreRun, ctx: FailureContext, database: string, tool = 'pg_restore'): { problem: string; infrastructure?: BotError } {
  const first = firstErrorLine(run.stderr);
  // `pg_restore: error: …` or psql's `psql:<stdin>:42: ERROR:  …`: the prefix says nothing people need.
  const line = first.replace(/^(pg_restore:\s*(error:\s*)?|psql:[^:]*:\d+:\s*)/, '').replace(/\s+/g, ' ');
  // PostgreSQL's DETAIL names the culprit ("view shop.paid_orders depends on table shop.orders").
  const lines = run.stderr.split('\n').map((l) => l.trim());
  const at = lines.indexOf(first);
  const detail = lines.slice(at + 1, at + 4).find((l) => l.startsWith('DETAIL:'));
  const problem = `${tool} failed: ${line || run.exit}${
    detail
      ? ` (${detail
          .replace(/^DETAIL:\s*/, '')
          .replace(/\s+/g, ' ')
          .replace(/\.$/, '')})`
      : ''
  }`;
  if (/No space left on device|could not extend file/.test(run.stderr)) {
    return {
      problem,
      infrastructure: new BotError(
        'disk_full',
        `The database server at ${ctx.server} ran out of disk space while restoring into ${database}; free space there and run it again.`,
        {
          detail: run.stderr.trim(),
        },
      ),
    };
  }
  const known = classifyFailure(run.stderr, ctx);
  // The backup's objects name a role this server lacks: a verdict that names the role and what to do, not a
  // connection failure ("check the user name in the URL"), and not pg_restore's bare words.
  if (known?.code === 'pg_role_missing') return { problem: known.userMessage };
  if (known && (known.code === 'pg_unreachable' || known.code === 'pg_auth_failed' || known.code === 'pg_version_mismatch')) {
    return { problem, infrastructure: new BotError(known.code, known.userMessage, { detail: run.stderr.trim() }) };
  }
  return { problem };
}

/**
 * A finished restore run: null when it restored, the backup's problem when it failed on the backup. A cancel
 * (`canceled` says what was undone) and an infrastructure failure throw.
 */
export function judgeRestore(run: PgRestoreRun, ctx: FailureContext, database: string, canceled: () => BotError, tool = 'pg_restore'): string | null {
  if (run.canceled) throw canceled();
  if (run.ok) return null;
  const f = restoreFailure(run, ctx, database, tool);
  if (f.infrastructure) throw f.infrastructure;
  return f.problem;
}

/** `--dbname` as a conninfo string: a bare name containing `=` would be parsed as one. */
export function dbnameArg(name: string): string {
  return `--dbname=dbname='${name.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
