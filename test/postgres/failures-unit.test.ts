import { describe, expect, it } from 'vitest';
import { withLockHolder } from '../../src/postgres/backup/dump.ts';
import type { LockWait } from '../../src/postgres/backup/lock-wait.ts';
import { clientFailure, firstErrorLine, toolFailure } from '../../src/postgres/index.ts';

const ctx = { tool: 'pg_dump', server: '127.0.0.1:5', storage: 'local:/var/backups' };

describe('toolFailure', () => {
  it.each([
    [
      'pg_dump: error: connection to server at "127.0.0.1", port 5 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?',
      'pg_unreachable',
      'Could not connect to the database server at 127.0.0.1:5 (connection refused); check that PostgreSQL is running and reachable from the backup host.',
    ],
    [
      'pg_dump: error: connection to server at "127.0.0.1", port 5 failed: FATAL:  password authentication failed for user "alice"',
      'pg_auth_failed',
      'The database server at 127.0.0.1:5 rejected the password of user "alice"; check the password in the target\'s URL.',
    ],
    [
      'pg_dump: error: connection to server at "127.0.0.1", port 5 failed: FATAL:  database "shop" does not exist',
      'pg_database_missing',
      'The database "shop" does not exist on the server at 127.0.0.1:5; check the database name in the target\'s URL.',
    ],
    [
      'pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 16.4; pg_dump version: 15.20',
      'pg_version_mismatch',
      'pg_dump 15.20 cannot back up a PostgreSQL 16.4 server; install the client tools of version 16 (postgresql-client-16) or set PG_BIN_DIR.',
    ],
    [
      'pg_dump: error: could not translate host name "db.nowhere" to address: Name or service not known',
      'pg_unreachable',
      'Could not connect to the database server at 127.0.0.1:5 (host name not found); check that PostgreSQL is running and reachable from the backup host.',
    ],
    [
      'pg_dump: error: query failed: ERROR:  permission denied for table payroll\npg_dump: detail: Query was: LOCK TABLE public.payroll IN ACCESS SHARE MODE',
      'pg_dump_failed',
      'pg_dump was refused access to table payroll; grant the backup role read access (e.g. the pg_read_all_data role) or use a superuser.',
    ],
    // A name with a space, whole (QA: "table Audit"); a large object, with what covers it (QA: pg_read_all_data advised).
    [
      'pg_dump: error: query failed: ERROR:  permission denied for table Audit Log\npg_dump: detail: Query was: LOCK TABLE public."Audit Log" IN ACCESS SHARE MODE',
      'pg_dump_failed',
      'pg_dump was refused access to table Audit Log; grant the backup role read access (e.g. the pg_read_all_data role) or use a superuser.',
    ],
    [
      'pg_dump: error: query failed: ERROR:  permission denied for large object 16403',
      'pg_dump_failed',
      'pg_dump was refused access to large object 16403: pg_read_all_data does not cover large objects; grant SELECT on each to the backup role (GRANT SELECT ON LARGE OBJECT 16403 TO …), make it their owner, or use a superuser.',
    ],
    [
      'pg_dump: error: could not open large object 16597: permission denied',
      'pg_dump_failed',
      'pg_dump was refused access to large object 16597: pg_read_all_data does not cover large objects; grant SELECT on each to the backup role (GRANT SELECT ON LARGE OBJECT 16597 TO …), make it their owner, or use a superuser.',
    ],
    [
      'pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\npg_dump: detail: Query was: LOCK TABLE "Billing"."Audit Log" IN ACCESS SHARE MODE',
      'pg_dump_failed',
      'The backup gave up waiting for a table lock held by another session (for example a running ALTER TABLE); run it again once that has finished.',
    ],
    [
      'pg_dump: warning: something odd\npg_dump: error: invalid snapshot identifier: "0000-1"',
      'pg_dump_failed',
      'pg_dump failed: invalid snapshot identifier: "0000-1".',
    ],
  ])('turns %j into %s', (stderr, code, sentence) => {
    const err = toolFailure(stderr, ctx);
    expect(err.code).toBe(code);
    expect(err.userMessage).toBe(sentence);
    expect(err.message).toBe(stderr); // the detail, for logs and the thread
  });

  it('says a restore’s failures as a restore’s: never "run the backup again", nor the backup disk for a full server disk', () => {
    const restore = { tool: 'pg_restore', server: '127.0.0.1:5' };
    expect(toolFailure('pg_restore: error: connection to server lost: server closed the connection unexpectedly', restore).userMessage).toBe(
      "The connection to the database server at 127.0.0.1:5 was lost during the restore; check the server's log, then run the restore again.",
    );
    expect(toolFailure('pg_restore: error: connection to server at "127.0.0.1", port 5 failed: Connection refused', restore).userMessage).toBe(
      'Could not connect to the database server at 127.0.0.1:5 (connection refused); check that PostgreSQL is running and reachable from the host running the restore.',
    );
    expect(toolFailure('pg_restore: error: could not extend file "base/16384/16390": No space left on device', restore).userMessage).toBe(
      'A disk filled up during the restore: the database server\'s at 127.0.0.1:5 when PostgreSQL says so ("could not extend file"), else this host\'s temp directory; free space, then run the restore again.',
    );
    expect(toolFailure('pg_dump: error: server closed the connection unexpectedly', ctx).userMessage).toMatch(
      /lost during the backup; .* run the backup again\.$/,
    );
    // A restore test cut short is run again as a restore test (`/restore-test`), not as a restore.
    const test = { ...restore, work: 'restore test' as const };
    expect(toolFailure('pg_restore: error: connection to server lost: server closed the connection unexpectedly', test).userMessage).toBe(
      "The connection to the database server at 127.0.0.1:5 was lost during the restore test; check the server's log, then run the restore test again.",
    );
  });

  it('falls back to how the tool ended when it said nothing', () => {
    expect(toolFailure('', ctx, undefined, 'killed by SIGKILL').userMessage).toBe('pg_dump failed: killed by SIGKILL.');
  });
});

describe('clientFailure', () => {
  it('classifies errors of the pg library too', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5'), { code: 'ECONNREFUSED' });
    expect(clientFailure(refused, ctx).code).toBe('pg_unreachable');
    const auth = Object.assign(new Error('password authentication failed for user "bob"'), { code: '28P01' });
    expect(clientFailure(auth, ctx).code).toBe('pg_auth_failed');
    const lock = Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' });
    expect(clientFailure(lock, ctx).userMessage).toMatch(/gave up waiting for a table lock/);
    // A client whose session the server ended (a replacement's swap, pg_terminate_backend): the connection was lost.
    const ended = clientFailure(new Error('Client has encountered a connection error and is not queryable'), ctx);
    expect([ended.code, ended.userMessage]).toEqual([
      'pg_unreachable',
      "The connection to the database server at 127.0.0.1:5 was lost during the backup; check the server's log, then run the backup again.",
    ]);
  });
});

describe('firstErrorLine', () => {
  it('skips warnings and blank lines', () => {
    expect(firstErrorLine('\npg_dump: warning: x\npg_dump: error: the cause\npg_dump: error: later')).toBe('pg_dump: error: the cause');
  });
});

describe('withLockHolder: the verdict of a backup that gave up on a lock', () => {
  const gaveUp = (table: string, query = 'Query was') =>
    toolFailure(
      `pg_dump: error: query failed: ERROR:  canceling statement due to statement timeout\npg_dump: detail: ${query}: LOCK TABLE ${table} IN ACCESS SHARE MODE`,
      ctx,
    );
  const seen = (what: string): LockWait => ({
    what,
    waitedMs: 40_000,
    holder: { pid: 4242, user: 'migrator', app: 'psql', state: 'idle in transaction', forMs: 60_000, query: 'LOCK TABLE' },
  });

  it('names the holder the watch saw when it waited on the table pg_dump gave up on', () => {
    expect(withLockHolder(gaveUp('"Billing"."Audit Log"'), seen('"Billing"."Audit Log"')).userMessage).toBe(
      'The backup gave up waiting for a table lock on "Billing"."Audit Log", held by pid 4242 (user migrator, psql, idle in transaction for 1 min 0 s: LOCK TABLE …); run it again once that has finished (or end that session: `SELECT pg_terminate_backend(4242)`).',
    );
  });

  it('names only the table when the wait the watch saw was on another one (granted since), or none was seen', () => {
    const said =
      'The backup gave up waiting for a table lock on public.orders, held by another session (for example a running ALTER TABLE); run it again once that has finished.';
    expect(withLockHolder(gaveUp('public.orders'), seen('"Billing"."Audit Log"')).userMessage).toBe(said);
    expect(withLockHolder(gaveUp('public.orders'), null).userMessage).toBe(said);
    // pg_dump 12-14 write "query was" in lower case.
    expect(withLockHolder(gaveUp('public.orders', 'query was'), null).userMessage).toBe(said);
  });

  it('keeps the wait seen when the counting gave up (lock_timeout: no table named), and leaves other failures alone', () => {
    const counting = clientFailure(Object.assign(new Error('canceling statement due to lock timeout'), { code: '55P03' }), ctx);
    expect(withLockHolder(counting, seen('public.orders')).userMessage).toMatch(
      /^The backup gave up waiting for a table lock on public\.orders, held by pid 4242/,
    );
    const other = toolFailure('pg_dump: error: invalid snapshot identifier: "0000-1"', ctx);
    expect(withLockHolder(other, seen('public.orders'))).toBe(other);
  });
});
