import { BACKUP_DISK_FULL, BotError, type ErrorCode } from '../errors.ts';

/**
 * Turns what PostgreSQL tools and the `pg` library say when they fail into one sentence for Slack (what
 * happened, what to do) and a code. libpq never prints passwords, and the URL never reaches argv, so stderr
 * is safe to keep as the error's detail for logs and the thread.
 */

export interface FailureContext {
  /** `pg_dump`, `pg_dumpall`, … — used in the generic sentence. */
  tool: string;
  /** `host:port` of the server, never the URL. */
  server: string;
  /** `local:/var/backups/…`, for the disk-full sentence. */
  storage?: string;
  /**
   * A role the restored objects name that the server lacks: how to name that server ("the restore-test server
   * host:port") and what to do. Without it: the server at `server`, and create the role or apply the globals.
   */
  missingRole?: { server: string; fix: string } | undefined;
  /** What to call the work in "… lost during the restore test; run the restore test again" (default: from `tool`). */
  work?: 'backup' | 'restore' | 'restore test';
}

/** The line that names the cause: the first `error:`/`FATAL` line, else the first non-empty one. */
export function firstErrorLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /\berror:|FATAL|\bfailed\b/i.test(l)) ?? lines[0] ?? '';
}

function sentence(s: string): string {
  const t = s.trim().replace(/[.\s]+$/, '');
  return `${t}.`;
}

interface Rule {
  test: RegExp;
  code: ErrorCode;
  say: (m: RegExpExecArray, c: FailureContext) => string;
}

/** How every "the server cannot be reached" sentence starts (a verdict's problems are sentences, not codes). */
export const CANNOT_CONNECT = 'Could not connect to the database server at ';

/** How a backup that waited too long for a lock starts its sentence (the backup names the lock and its holder: backup/dump.ts). */
export const LOCK_GAVE_UP = 'The backup gave up waiting for a table lock';

/** What the tool was doing, for the sentences that say it: pg_dump's work is a backup, anything else a restore. */
const workOf = (c: FailureContext) => c.work ?? (/^(pg_dump|pg_dumpall|pg_basebackup)$/.test(c.tool) ? 'backup' : 'restore');

const unreachable = (reason: string) => (_m: RegExpExecArray, c: FailureContext) =>
  `${CANNOT_CONNECT}${c.server} (${reason}); check that PostgreSQL is running and reachable from the ${workOf(c) === 'backup' ? 'backup host' : 'host running the restore'}.`;

/** First match wins, so the specific causes (a FATAL inside a "connection … failed" line) come before the network ones. */
const RULES: Rule[] = [
  {
    test: /No space left on device|ENOSPC/,
    code: 'disk_full',
    say: (_m, c) =>
      workOf(c) === 'backup'
        ? `${BACKUP_DISK_FULL}${c.storage ? ` (${c.storage})` : ''}; free space or delete old backups, then run the backup again.`
        : `A disk filled up during the ${workOf(c)}: the database server's at ${c.server} when PostgreSQL says so ("could not extend file"), else this host's temp directory; free space, then run the ${workOf(c)} again.`,
  },
  {
    test: /password authentication failed for user "([^"]*)"/,
    code: 'pg_auth_failed',
    say: (m, c) => `The database server at ${c.server} rejected the password of user "${m[1]}"; check the password in the target's URL.`,
  },
  {
    test: /no password supplied|client password must be a string/,
    code: 'pg_auth_failed',
    say: (_m, c) => `The database server at ${c.server} asks for a password but the target's URL has none; add it to the URL.`,
  },
  {
    test: /no pg_hba\.conf entry for host "([^"]*)", user "([^"]*)"/,
    code: 'pg_auth_failed',
    say: (m, c) =>
      `The database server at ${c.server} does not let user "${m[2]}" connect from ${m[1]} (no pg_hba.conf entry); ask its administrator to allow the backup host.`,
  },
  {
    // Said while running SQL (pg_restore's `could not execute query: ERROR:`, SQLSTATE 42704), not while connecting
    // (FATAL, 28000): an object of the backup (a policy, a grant, an owner) names a role this server lacks.
    test: /\bERROR:\s+role "([^"]*)" does not exist|role "([^"]*)" does not exist 42704\b/,
    code: 'pg_role_missing',
    say: (m, c) =>
      `The backup's objects name the role "${m[1] ?? m[2]}", which does not exist on ${c.missingRole?.server ?? `the server at ${c.server}`}; ${
        c.missingRole?.fix ?? "restore again with --with-globals, so the backup's roles are created there first, or create the role there"
      }.`,
  },
  {
    // pg_restore giving an object to its owner (ALTER … OWNER TO), as a role that is neither a superuser nor a member
    // of that owner: PostgreSQL's rule (SQLSTATE 42501). QA: a restore onto a new server as a CREATEROLE role.
    test: /\bERROR:\s+must be member of role "([^"]*)"/,
    code: 'pg_auth_failed',
    say: (m, c) =>
      `The backup's objects are owned by the role "${m[1]}", and the role restoring them on the server at ${c.server} may give objects to "${m[1]}" only as a superuser or a member of it (a role that is not a superuser can never join a superuser role); restore as a superuser there, or make the restoring role a member of "${m[1]}" first.`,
  },
  {
    // Connecting as a role the server does not have: the URL's user.
    test: /role "([^"]*)" does not exist/,
    code: 'pg_auth_failed',
    say: (m, c) => `The role "${m[1]}" does not exist on the database server at ${c.server}; check the user name in the target's URL.`,
  },
  {
    test: /database "([^"]*)" does not exist/,
    code: 'pg_database_missing',
    say: (m, c) => `The database "${m[1]}" does not exist on the server at ${c.server}; check the database name in the target's URL.`,
  },
  {
    test: /server version mismatch(?:[\s\S]*?server version: ([^;\s]+); \S+ version: ([^\s]+))?/,
    code: 'pg_version_mismatch',
    say: (m, c) =>
      m[1]
        ? `${c.tool} ${m[2]} cannot back up a PostgreSQL ${m[1]} server; install the client tools of version ${m[1].split('.')[0]} (postgresql-client-${m[1].split('.')[0]}) or set PG_BIN_DIR.`
        : `${c.tool} is older than the database server; install the matching postgresql-client package or set PG_BIN_DIR.`,
  },
  { test: /Connection refused|ECONNREFUSED/, code: 'pg_unreachable', say: unreachable('connection refused') },
  { test: /could not translate host name|ENOTFOUND|EAI_AGAIN/, code: 'pg_unreachable', say: unreachable('host name not found') },
  { test: /timeout expired|ETIMEDOUT|connection timeout/i, code: 'pg_unreachable', say: unreachable('timed out') },
  { test: /No route to host|EHOSTUNREACH/, code: 'pg_unreachable', say: unreachable('no route to host') },
  { test: /Network is unreachable|ENETUNREACH/, code: 'pg_unreachable', say: unreachable('network unreachable') },
  { test: /on socket "[^"]*" failed: No such file or directory/, code: 'pg_unreachable', say: unreachable('no server on that socket') },
  {
    test: /the database system is (starting up|shutting down|in recovery mode)/,
    code: 'pg_unreachable',
    say: (m, c) => unreachable(`the server is ${m[1]}`)(m, c),
  },
  { test: /too many clients|remaining connection slots/, code: 'pg_unreachable', say: unreachable('too many connections') },
  {
    // Accepted and closed at once (connection.ts connectClient; libpq says it inside its "connection … failed" line).
    test: /closed the connection before it was established|connection to server (?:at|on) [^\n]* failed: server closed the connection unexpectedly/,
    code: 'pg_unreachable',
    say: unreachable('the server closed the connection before it was established: a wrong port, or a proxy with no database behind it'),
  },
  {
    // node-pg's own, on a client whose session the server ended: "Client has encountered a connection error and is not
    // queryable" (a replacement's swap ending the backup's counting session, CI).
    test: /server closed the connection unexpectedly|Connection terminated unexpectedly|ECONNRESET|terminating connection due to administrator command|Client has encountered a connection error/,
    code: 'pg_unreachable',
    say: (_m, c) =>
      `The connection to the database server at ${c.server} was lost during the ${workOf(c)}; check the server's log, then run the ${workOf(c)} again.`,
  },
  {
    // The snapshot's session waits under lock_timeout; pg_dump ≤ 16 waits under statement_timeout (--lock-wait-timeout).
    test: /canceling statement due to lock timeout|canceling statement due to statement timeout\n[^\n]*query was: LOCK TABLE /i,
    code: 'pg_dump_failed',
    say: () => `${LOCK_GAVE_UP} held by another session (for example a running ALTER TABLE); run it again once that has finished.`,
  },
  {
    // pg_read_all_data does not cover large objects (QA: told to grant it to a role that had it).
    test: /permission denied for large object (\d+)|could not open large object (\d+): permission denied/,
    code: 'pg_dump_failed',
    say: (m, c) =>
      `${c.tool} was refused access to large object ${m[1] ?? m[2]}: pg_read_all_data does not cover large objects; grant SELECT on each to the backup role (GRANT SELECT ON LARGE OBJECT ${m[1] ?? m[2]} TO …), make it their owner, or use a superuser.`,
  },
  {
    // The name as the server says it, to the end of its line: "table Audit Log" (QA: cut at the space, "table Audit").
    // (The SQLSTATE clientFailure appends after a space is not part of it.)
    test: /permission denied for (materialized view|foreign table|table|view|sequence|schema|function|procedure|database|type|relation) ([^\n]+?)(?: [0-9A-Z]{5})?(?:\n|$)/,
    code: 'pg_dump_failed',
    say: (m, c) =>
      `${c.tool} was refused access to ${m[1]} ${(m[2] ?? '').trim()}; grant the backup role read access (e.g. the pg_read_all_data role) or use a superuser.`,
  },
];

/** Classifies `text` (a tool's stderr or a `pg` error message); null when no rule knows it. */
export function classifyFailure(text: string, ctx: FailureContext): { code: ErrorCode; userMessage: string } | null {
  for (const rule of RULES) {
    const m = rule.test.exec(text);
    if (m) return { code: rule.code, userMessage: rule.say(m, ctx) };
  }
  return null;
}

/**
 * A failed pg tool: the user sentence comes from its first error line; `exit` (e.g. "killed by SIGKILL") stands
 * in when the tool died without a word.
 */
export function toolFailure(stderr: string, ctx: FailureContext, cause?: unknown, exit?: string): BotError {
  const known = classifyFailure(stderr, ctx);
  const line = firstErrorLine(stderr).replace(/^[\w-]+:\s*(error:\s*)?/, '');
  const userMessage = known?.userMessage ?? sentence(`${ctx.tool} failed: ${line || exit || 'it exited without an error message'}`);
  return new BotError(known?.code ?? 'pg_dump_failed', userMessage, { cause, detail: stderr.trim() || userMessage });
}

/** A failure of the `pg` library (connecting, counting). */
export function clientFailure(err: unknown, ctx: FailureContext): BotError {
  if (err instanceof BotError) return err;
  const e = err as { message?: string; code?: string };
  const text = `${e.message ?? String(err)} ${e.code ?? ''}`;
  const known = classifyFailure(text, ctx);
  const userMessage = known?.userMessage ?? sentence(`Querying the database at ${ctx.server} failed: ${e.message ?? String(err)}`);
  return new BotError(known?.code ?? 'pg_dump_failed', userMessage, { cause: err, detail: e.message ?? String(err) });
}

/** The entry count `pg_restore --list` prints in its header (`; TOC Entries: 123`); 0 when there is none. */
export function tocEntryCount(listing: string): number {
  return Number(/TOC Entries:\s*(\d+)/.exec(listing)?.[1] ?? 0);
}

/** How a child process ended, for a sentence: `killed by SIGKILL`, `exit code 1`, or why it never started. */
export function describeExit(r: { signal?: string | undefined; exitCode?: number | undefined; originalMessage?: string | undefined }): string {
  if (r.signal) return `killed by ${r.signal}`;
  if (r.exitCode !== undefined) return `exit code ${r.exitCode}`;
  return r.originalMessage || 'it did not start';
}
