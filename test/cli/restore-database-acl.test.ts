import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { cli, cliBackupInto } from '../support/app-backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';

/**
 * The database's own grants (`REVOKE CONNECT ON DATABASE … FROM PUBLIC`, `GRANT CONNECT … TO app_rw`) and its
 * CONNECTION LIMIT. QA: a replacement (--into) and a restore onto a new server --with-globals failed with "ACL
 * DATABASE :database: missing from the restored copy", and the CONNECTION LIMIT failed every restore and restore test
 * with a message pairing it with the next line ("the backup has … CONNECTION LIMIT = 50, the restored copy … SET
 * search_path"). Restores that keep owners and grants now give the new database its grants and limit, verified;
 * those that do not (restore tests, a new database) leave the grants out on both sides and say so.
 */
describe('a database with grants of its own and a connection limit', () => {
  const rw = `app_rw_${process.pid}`;
  // Granted SELECT by rw, not by the owner (pg_dump: SET SESSION AUTHORIZATION around the GRANT).
  const reader = `app_reader_${process.pid}`;
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let id: string;
  let newServer: EphemeralPostgres;
  const leftovers: string[] = [];

  beforeAll(async () => {
    newServer = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-dbacl-'));
    await runSql(inject('pgUrl'), `CREATE ROLE ${rw}; CREATE ROLE ${reader}`);
    db = await createTestDatabase(inject('pgUrl'), 'shop');
    await runSql(
      db.url,
      `CREATE TABLE "Invoice" (id int PRIMARY KEY, total numeric); INSERT INTO "Invoice" SELECT g, g * 2 FROM generate_series(1, 50) g;
       REVOKE CONNECT ON DATABASE ${db.name} FROM PUBLIC; GRANT CONNECT ON DATABASE ${db.name} TO ${rw};
       ALTER DATABASE ${db.name} CONNECTION LIMIT 50; ALTER DATABASE ${db.name} SET search_path TO public;
       GRANT SELECT ON "Invoice" TO ${rw} WITH GRANT OPTION; SET ROLE ${rw}; GRANT SELECT ON "Invoice" TO ${reader}; RESET ROLE`,
    );
    // A template (teams copy new tenants' databases from one): QA: "DATABASE PROPERTIES missing" failed every restore.
    await runSql(inject('pgUrl'), `ALTER DATABASE ${db.name} IS_TEMPLATE true`);
    ({ env, id } = await cliBackupInto(dir, db.url));
  }, 120_000);

  afterAll(async () => {
    // Templates until told otherwise: a template cannot be dropped.
    for (const name of [...leftovers, db?.name].filter(Boolean))
      await runSql(inject('pgUrl'), `UPDATE pg_database SET datistemplate = false WHERE datname = '${name}'`);
    for (const name of leftovers) await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await db?.drop();
    await runSql(inject('pgUrl'), `DROP ROLE IF EXISTS ${reader}; DROP ROLE IF EXISTS ${rw}`);
    await newServer?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Who may connect, besides the owner and superusers, and the limit. */
  const access = (url: string) =>
    withClient(url, async (c) => {
      const { rows } = await c.query<{ limit: number; public: boolean; rw: boolean; template: boolean }>(
        `SELECT datconnlimit AS limit, datistemplate AS template, has_database_privilege('public', oid, 'CONNECT') AS public,
                has_database_privilege($1, oid, 'CONNECT') AS rw
         FROM pg_database WHERE datname = current_database()`,
        [rw],
      );
      return rows[0];
    });
  const on = (server: string, database: string) => {
    const u = new URL(server);
    u.pathname = `/${database}`;
    return u.toString();
  };

  it('passes its restore test and restores into a new database with its limit, without its grants, saying so', async () => {
    const test = await cli(['restore-test', id], env);
    expect(test.exitCode, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toMatch(/PASSED/);

    const restored = await cli(['restore', id], env);
    expect(restored.exitCode, restored.stderr).toBe(0);
    const database = /Restored the whole database into (\S+) in /.exec(restored.stdout)?.[1] ?? '';
    expect(restored.stdout).toMatch(/Owners and grants were not restored, the database's own neither/);
    expect(await access(on(db.url, database))).toEqual({ limit: 50, template: true, public: true, rw: true });
    // A template's copy is one too, and `restore drop` still drops it.
    const dropped = await cli(['restore', 'drop', database, '--yes'], env);
    expect(dropped.exitCode, dropped.stderr).toBe(0);
    expect(await withClient(inject('pgUrl'), async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount)).toBe(0);
  }, 120_000);

  it('a replacement keeps the database’s grants and limit, verified', async () => {
    const replaced = await cli(['restore', id, `--into=${db.name}`, '--yes'], env);
    expect(replaced.stderr).not.toMatch(/ACL DATABASE|CONNECTION LIMIT/);
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    const kept = /kept as (\S+?_replaced_\w+)/.exec(replaced.stdout)?.[1] ?? '';
    if (kept) leftovers.push(kept);
    expect(await access(db.url)).toEqual({ limit: 50, template: true, public: false, rw: true });
    // A grant made by a role other than the owner comes back with its grantor.
    const acl = await withClient(
      db.url,
      async (c) => (await c.query<{ acl: string }>(`SELECT relacl::text AS acl FROM pg_class WHERE relname = 'Invoice'`)).rows[0]?.acl,
    );
    expect(acl).toContain(`${reader}=r/${rw}`);
    expect(acl).toContain(`${rw}=r*/`);
  }, 120_000);

  it('a restore onto a new server --with-globals gives the database its grants and limit, verified', async () => {
    const run = await cli(['restore', id, '--to-url-env=NEW_SERVER_URL', '--with-globals'], { ...env, NEW_SERVER_URL: newServer.url });
    expect(run.stderr).not.toMatch(/ACL DATABASE|CONNECTION LIMIT/);
    expect(run.exitCode, run.stderr).toBe(0);
    const database = /Restored the whole database into (\S+) in /.exec(run.stdout)?.[1] ?? '';
    expect(await access(on(newServer.url, database))).toEqual({ limit: 50, template: true, public: false, rw: true });
  }, 120_000);
});
