import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import type { AppDatabase } from '../support/app-database.ts';
import { appBackedUpByCli, cli, cliBackupInto } from '../support/app-backups.ts';
import { runSql } from '../support/databases.ts';
import { fingerprint } from '../support/fingerprint.ts';
import { withClient } from '../support/postgres-helpers.ts';

/**
 * The server is gone: `pg-backup-bot restore <id> --to-url-env=… --with-globals` brings an application database
 * back on a new, empty server, its roles first, and the copy is compared with its source by plain SQL.
 */
describe('pg-backup-bot restore onto a new server', () => {
  let app: AppDatabase;
  let newServer: EphemeralPostgres;
  let env: Record<string, string>;
  let backupId: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    newServer = await startEphemeralPostgres();
    ({ app, env, backupId, cleanup } = await appBackedUpByCli(inject('pgUrl'), 'lost'));
  });

  afterAll(async () => {
    await newServer?.stop();
    await cleanup?.();
  });

  it('restores roles first (kept and created, listed), then the whole database with its owners and grants, verified', async () => {
    const run = await cli(['restore', backupId, '--to-url-env=NEW_SERVER_URL', '--with-globals'], { ...env, NEW_SERVER_URL: newServer.url });
    expect(run.exitCode, run.stderr).toBe(0);
    const server = new URL(newServer.url);
    // Globals are the cluster's: the test server's other roles come along, created too; postgres existed.
    const roles = new RegExp(`Roles on ${server.hostname}:${server.port}: kept postgres; created ([^.]+)\\.`).exec(run.stderr)?.[1]?.split(', ') ?? [];
    expect(roles).toContain(app.role);
    const restored = /Restored the whole database into (\S+) in /.exec(run.stdout)?.[1] ?? '';
    expect(restored).toMatch(/^pgbb_restore_/);
    expect(run.stdout).toMatch(/rows; checked: .*tables: content identical; \d+ definitions identical/);
    expect(run.stdout).not.toMatch(/Owners and grants were not restored/);
    // The summary names the roles applied and how to give the database its own name back there.
    expect(run.stdout).toContain(`  roles  Roles on ${server.hostname}:${server.port}: kept postgres; created `);
    expect(run.stdout).toContain(
      `  name   to give it the source's name: ALTER DATABASE "${restored}" RENAME TO "${app.name}" (with nobody connected to it; ${app.name} must not exist there)`,
    );

    const copy = new URL(newServer.url);
    copy.pathname = `/${restored}`;
    const [source, onNew] = await Promise.all([fingerprint(app.url), fingerprint(copy.toString())]);
    // Rows, definitions, owners and grants (billing belongs to the application role), large objects, the
    // database's locale and comment, collation and per-role settings: all as in the source.
    expect(onNew.database).toEqual(source.database);
    expect(onNew.tables).toEqual(source.tables);
    expect(onNew.definitions).toEqual(source.definitions);
    expect(onNew.largeObjects).toEqual(source.largeObjects);
    expect(onNew.collationOrder).toBe(source.collationOrder);
    expect(onNew.settings).toEqual(source.settings);

    // Known where it is (QA: looked for on the target's server, `restore drop` said "not on its server any more"):
    // listed on the new server with the variable set, named so without it, and dropped there.
    const withVar = { ...env, NEW_SERVER_URL: newServer.url };
    expect((await cli(['restore', 'list'], withVar)).stdout).toContain(`${restored} on ${server.hostname}:${server.port}`);
    // Without it, named apart, not left out (QA: a new shell's `restore list` did not show it).
    expect((await cli(['restore', 'list'], env)).stdout).toContain(
      `Recorded, not looked for (restored onto a server named by a variable not set here; set it as it was for that restore to see whether they are still there, and to drop them): ${restored} (NEW_SERVER_URL).`,
    );
    const unset = await cli(['restore', 'drop', restored, '--yes'], env);
    expect(unset.stderr).toContain(`${restored} was restored onto the server NEW_SERVER_URL named; set NEW_SERVER_URL as it was for that restore to drop it.`);
    const drop = await cli(['restore', 'drop', restored, '--yes'], withVar);
    expect(drop.stdout, drop.stderr).toMatch(new RegExp(`^Dropped ${restored} `));
    // Dropped, so no longer named as perhaps still there (second reader).
    expect((await cli(['restore', 'list'], env)).stdout).not.toContain(restored);
  });

  it('as a role with CREATEDB and CREATEROLE, not a superuser: the roles it creates log in as before; objects a superuser owns are named (QA)', async () => {
    // A login role with a password, in the globals of a backup taken now.
    const login = `lost_login_${process.pid}_${Date.now() % 100000}`;
    await runSql(inject('pgUrl'), `CREATE ROLE ${login} LOGIN PASSWORD 'pw-${login}' CONNECTION LIMIT 7`);
    const other = await startEphemeralPostgres();
    try {
      const taken = await cli(['backup'], env);
      const id = /^Backup (\S+) OK/.exec(taken.stdout)?.[1] ?? '';
      expect(id, taken.stderr).not.toBe('');
      await runSql(other.url, 'CREATE ROLE restorer LOGIN CREATEDB CREATEROLE');
      const u = new URL(other.url);
      u.username = 'restorer';
      const run = await cli(['restore', id, '--to-url-env=NEW_SERVER_URL', '--with-globals'], { ...env, NEW_SERVER_URL: u.toString() });
      // PostgreSQL 15 refuses NOSUPERUSER, NOREPLICATION and NOBYPASSRLS from a role that is not a superuser: they are
      // left out (a new role has them), so LOGIN, the password and the rest of its ALTER ROLE are applied.
      expect(run.stderr).not.toMatch(/must be superuser/);
      const roles = await withClient(
        other.url,
        async (c) =>
          (
            await c.query<{ rolname: string; rolcanlogin: boolean; has_password: boolean; rolconnlimit: number }>(
              'SELECT rolname, rolcanlogin, rolpassword IS NOT NULL AS has_password, rolconnlimit FROM pg_authid WHERE rolname = ANY($1)',
              [[login, app.role]],
            )
          ).rows,
      );
      expect(roles.find((r) => r.rolname === login)).toEqual({ rolname: login, rolcanlogin: true, has_password: true, rolconnlimit: 7 });
      expect(roles.find((r) => r.rolname === app.role)?.rolcanlogin).toBe(false);
      // Giving objects to a role takes membership in it when not a superuser: granted, and said with how to revoke it.
      expect(run.stderr).toMatch(new RegExp(`restorer \\(not a superuser\\) was made a member of [^:]*${app.role}`));
      // The fixture's other objects belong to postgres, a superuser, which no other role may give objects to: the
      // restore fails saying so, not with pg_restore's bare "must be member of role", and leaves no database.
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toContain(
        `The backup's objects are owned by the role "postgres", and the role restoring them on the server at ${u.hostname}:${u.port} may give objects to "postgres" only as a superuser or a member of it`,
      );
      const left = await withClient(other.url, async (c) => (await c.query("SELECT datname FROM pg_database WHERE datname LIKE 'pgbb_restore_%'")).rows);
      expect(left).toEqual([]);
    } finally {
      await other.stop();
      await runSql(inject('pgUrl'), `DROP ROLE IF EXISTS ${login}`);
    }
  });

  it('as a role with CREATEDB and CREATEROLE: an application whose objects its own role owns, in public, is restored with them (QA)', async () => {
    // As most applications are: the database and everything in it the application's role's, the enum and tables in
    // public. Since PostgreSQL 15 public is the database owner's, and the copy was the restorer's until after the
    // restore: every ALTER … OWNER TO in public failed ("permission denied for schema public").
    const tag = `own_${process.pid}_${Date.now() % 100000}`;
    const source = new URL(inject('pgUrl'));
    source.pathname = `/${tag}`;
    await runSql(inject('pgUrl'), `CREATE ROLE ${tag}_app NOLOGIN`);
    await runSql(inject('pgUrl'), `CREATE DATABASE ${tag} OWNER ${tag}_app`);
    await runSql(
      source.toString(),
      `SET ROLE ${tag}_app;
       CREATE TYPE mood AS ENUM ('ok', 'sad');
       CREATE TABLE "User" (id int PRIMARY KEY, feeling mood NOT NULL);
       INSERT INTO "User" SELECT g, 'ok' FROM generate_series(1, 50) g;
       CREATE VIEW happy AS SELECT id FROM "User" WHERE feeling = 'ok';`,
    );
    const other = await startEphemeralPostgres();
    const dir = await mkdtemp(join(tmpdir(), 'pgbb-own-'));
    try {
      const { env: ownEnv, id } = await cliBackupInto(dir, source.toString());
      await runSql(other.url, 'CREATE ROLE restorer LOGIN CREATEDB CREATEROLE');
      const u = new URL(other.url);
      u.username = 'restorer';
      const run = await cli(['restore', id, '--to-url-env=NEW_SERVER_URL', '--with-globals'], { ...ownEnv, NEW_SERVER_URL: u.toString() });
      expect(run.exitCode, run.stderr).toBe(0);
      const restored = /Restored the whole database into (\S+) in /.exec(run.stdout)?.[1] ?? '';
      const copy = new URL(other.url);
      copy.pathname = `/${restored}`;
      const owners = await withClient(copy.toString(), async (c) => ({
        database: (await c.query('SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = current_database()')).rows[0]?.o,
        objects: (
          await c.query(
            `SELECT c.relname AS name, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
               WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v')
             UNION ALL SELECT typname, pg_get_userbyid(typowner) FROM pg_type WHERE typname = 'mood' ORDER BY 1`,
          )
        ).rows,
        rows: (await c.query('SELECT count(*)::int AS n FROM happy')).rows[0]?.n,
      }));
      expect(owners).toEqual({
        database: `${tag}_app`,
        objects: [
          { name: 'User', owner: `${tag}_app` },
          { name: 'happy', owner: `${tag}_app` },
          { name: 'mood', owner: `${tag}_app` },
        ],
        rows: 50,
      });
    } finally {
      await other.stop();
      await rm(dir, { recursive: true, force: true });
      await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS ${tag}`);
      await runSql(inject('pgUrl'), `DROP ROLE IF EXISTS ${tag}_app`);
    }
  });

  it('a role the new server already has is kept, and where it differs from the backup’s (LOGIN…) that is said (QA)', async () => {
    const other = await startEphemeralPostgres();
    try {
      // There already, and able to log in; the backup's is NOLOGIN (support/app-database.ts).
      await runSql(other.url, `CREATE ROLE "${app.role}" LOGIN CREATEDB`);
      const run = await cli(['restore', backupId, '--to-url-env=OTHER_URL', '--with-globals'], { ...env, OTHER_URL: other.url });
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stderr).toContain(
        `role ${app.role} was kept as this server has it, which differs from the backup's: CREATEDB LOGIN here, NOCREATEDB NOLOGIN in the backup; ALTER ROLE it by hand if the restored database's users need the backup's.`,
      );
      // Kept as it was: nothing of it changed.
      await withClient(other.url, async (c) => {
        const r = await c.query('SELECT rolcanlogin, rolcreatedb FROM pg_roles WHERE rolname = $1', [app.role]);
        expect(r.rows[0]).toEqual({ rolcanlogin: true, rolcreatedb: true });
      });
    } finally {
      await other.stop();
    }
  }, 120_000);

  it("without --with-globals, says that the source's roles may be missing there and how to bring them (QA)", async () => {
    const run = await cli(['restore', backupId, '--to-url-env=NEW_SERVER_URL'], { ...env, NEW_SERVER_URL: newServer.url });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain(
      "On a new server the source's roles may not exist: to restore them first, and owners and grants with them, drop this copy and restore again with --with-globals",
    );
    const restored = /Restored the whole database into (\S+) in /.exec(run.stdout)?.[1] ?? '';
    await cli(['restore', 'drop', restored, '--yes'], { ...env, NEW_SERVER_URL: newServer.url });
  });

  it('names the variable the URL came from, not "the target\'s URL", which is fine (QA)', async () => {
    const u = new URL(newServer.url);
    u.pathname = '/no_such_maintenance_db';
    const wrongDb = await cli(['restore', backupId, '--to-url-env=NEW_DB_URL'], { ...env, NEW_DB_URL: u.toString() });
    expect(wrongDb.exitCode).toBe(1);
    expect(wrongDb.stderr).toContain('check the database name in NEW_DB_URL.');
    expect(wrongDb.stderr).not.toContain("target's URL");
    const notUrl = await cli(['restore', backupId, '--to-url-env=NEW_DB_URL'], { ...env, NEW_DB_URL: 'host=db1 user=app' });
    expect(notUrl.exitCode).toBe(2);
    expect(notUrl.stderr.trim()).toBe('NEW_DB_URL is not a postgres:// URL (postgres://user@host:port/database, the password from the environment only).');
    // --into with it: refused naming the option given (QA: it said "--to-url" for --to-url-env).
    const into = await cli(['restore', backupId, '--into=app', '--to-url-env=NEW_DB_URL'], { ...env, NEW_DB_URL: newServer.url });
    expect(into.exitCode).toBe(2);
    expect(into.stderr).toMatch(
      /^--to-url-env restores the whole database into a new database on that server \(--into and --table are for the target's own server\)/,
    );
  });

  it('refuses a password on the command line, pointing at --to-url-env', async () => {
    const u = new URL(newServer.url);
    u.password = 'secret-in-argv';
    const run = await cli(['restore', backupId, `--to-url=${u.toString()}`], env);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/has a password, which the command line would show to everyone on this machine: .*--to-url-env=NAME/);
  });
});
