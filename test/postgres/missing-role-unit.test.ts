import { describe, expect, it } from 'vitest';
import { BotError } from '../../src/errors.ts';
import { classifyFailure, clientFailure, toolFailure } from '../../src/postgres/index.ts';
import { judgeRestore, restoreFailure } from '../../src/postgres/restore/restore-failure.ts';
import { sameServer } from '../../src/workers/restore-test-roles.ts';

/**
 * "role … does not exist" means two things: said while connecting (FATAL, SQLSTATE 28000) it is the URL's user;
 * said while pg_restore runs the backup's SQL (ERROR, 42704) it is a role the backup's objects name.
 */
const ctx = { tool: 'pg_restore', server: '127.0.0.1:5433' };
const onRestoreServer = {
  ...ctx,
  missingRole: {
    server: 'the restore-test server 127.0.0.1:5433',
    fix: "give the bot's role there CREATEROLE so it can apply the backup's globals, or create the role",
  },
};
const duringRestore =
  'pg_restore: error: could not execute query: ERROR:  role "rw_app" does not exist\nCommand was: CREATE POLICY "owner_reads" ON "billing"."Invoice" FOR SELECT TO "rw_app" USING (true);\n';
const whileConnecting = 'pg_restore: error: connection to server at "127.0.0.1", port 5433 failed: FATAL:  role "bot" does not exist\n';
const run = (stderr: string) => ({ ok: false, canceled: false, stderr, stdout: '', exit: 'exit code 1' });

describe('a missing role', () => {
  it('named by the backup’s objects: a problem that names the role and what to do on the restore-test server', () => {
    const problem =
      "The backup's objects name the role \"rw_app\", which does not exist on the restore-test server 127.0.0.1:5433; give the bot's role there CREATEROLE so it can apply the backup's globals, or create the role.";
    expect(restoreFailure(run(duringRestore), onRestoreServer, 'pgbb_rt_x')).toEqual({ problem });
    // A verdict on the test, not "could not run": nothing is thrown.
    expect(judgeRestore(run(duringRestore), onRestoreServer, 'pgbb_rt_x', () => new BotError('canceled', 'canceled'))).toBe(problem);
  });

  it('without a restore-test server: the server by its address, and the two ways to get the role', () => {
    expect(classifyFailure(duringRestore, ctx)).toEqual({
      code: 'pg_role_missing',
      userMessage:
        'The backup\'s objects name the role "rw_app", which does not exist on the server at 127.0.0.1:5433; restore again with --with-globals, so the backup\'s roles are created there first, or create the role there.',
    });
    // psql's form (selective restores), and the pg library's error with its SQLSTATE.
    expect(classifyFailure('psql:<stdin>:42: ERROR:  role "rw_app" does not exist', ctx)?.code).toBe('pg_role_missing');
    const query = Object.assign(new Error('role "rw_app" does not exist'), { code: '42704' });
    expect(clientFailure(query, ctx).code).toBe('pg_role_missing');
  });

  it('the connecting role itself: still the URL’s user, and still a failure to run (thrown)', () => {
    const urlUser = 'The role "bot" does not exist on the database server at 127.0.0.1:5433; check the user name in the target\'s URL.';
    expect(toolFailure(whileConnecting, ctx)).toMatchObject({ code: 'pg_auth_failed', userMessage: urlUser });
    expect(() => judgeRestore(run(whileConnecting), onRestoreServer, 'pgbb_rt_x', () => new BotError('canceled', 'canceled'))).toThrow(
      expect.objectContaining({ code: 'pg_auth_failed', userMessage: urlUser }),
    );
    const connecting = Object.assign(new Error('role "bot" does not exist'), { code: '28000' });
    expect(clientFailure(connecting, ctx).userMessage).toBe(urlUser);
  });
});

describe('sameServer', () => {
  it('compares host and port only, case-blind, 5432 by default', () => {
    expect(sameServer('postgres://a@DB.example:5432/shop', 'postgresql://b@db.example/postgres')).toBe(true);
    expect(sameServer('postgres://a@db.example:5433/shop', 'postgres://a@db.example:5432/shop')).toBe(false);
    expect(sameServer('postgres://a@db1.example/shop', 'postgres://a@db2.example/shop')).toBe(false);
  });

  it('a URL it cannot read counts as the same server: nothing is applied to a server it cannot tell apart', () => {
    expect(sameServer('not a url', 'postgres://a@db.example/shop')).toBe(true);
  });
});

describe('roles created for a restore test carry no credentials or powers', () => {
  it('drops the password and turns every power off', async () => {
    const { disarmed, parseGlobals } = await import('../../src/postgres/restore/globals-apply.ts');
    const [create, alter] = parseGlobals(
      `CREATE ROLE rw_app;\nALTER ROLE rw_app WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc' VALID UNTIL '2030-01-01';\n`,
    ).map(disarmed);
    expect(create?.sql).toBe('CREATE ROLE rw_app');
    expect(alter?.sql).toBe('ALTER ROLE rw_app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS');
  });
});
