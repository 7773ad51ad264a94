import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { cli, cliBackupInto } from '../support/app-backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';

/**
 * Per-database settings of two roles created in the other order than their names sort: pg_dump prints them in
 * catalog order, and a new server gets the roles from the globals in name order. QA: `restore <id> --to-url-env=…
 * --with-globals` failed "DATABASE PROPERTIES: the backup has `ALTER ROLE app_rw IN DATABASE …`, the restored copy
 * `ALTER ROLE app IN DATABASE …`" though both settings were there. And a restore that failed after creating roles did
 * not say the roles it had created stay.
 */
describe('per-role settings of roles created out of name order, restored onto a new server', () => {
  const [rw, app] = [`zz_rw_${process.pid}`, `aa_app_${process.pid}`];
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let id: string;
  let newServer: EphemeralPostgres;
  let other: EphemeralPostgres;

  beforeAll(async () => {
    [newServer, other] = await Promise.all([startEphemeralPostgres(), startEphemeralPostgres()]);
    dir = await mkdtemp(join(tmpdir(), 'pgbb-rolesets-'));
    // The second name sorts first: created last, it comes last in the source's catalog, first on the new server.
    await runSql(inject('pgUrl'), `CREATE ROLE ${rw}; CREATE ROLE ${app}`);
    db = await createTestDatabase(inject('pgUrl'), 'shop');
    await runSql(
      db.url,
      `CREATE TABLE "Invoice" (id int PRIMARY KEY, total numeric); INSERT INTO "Invoice" SELECT g, g * 2 FROM generate_series(1, 50) g;
       ALTER ROLE ${rw} IN DATABASE ${db.name} SET lock_timeout TO '5s';
       ALTER ROLE ${app} IN DATABASE ${db.name} SET work_mem TO '8MB';
       ALTER DATABASE ${db.name} SET search_path TO public`,
    );
    ({ env, id } = await cliBackupInto(dir, db.url));
  }, 120_000);

  afterAll(async () => {
    await db?.drop();
    await runSql(inject('pgUrl'), `DROP ROLE IF EXISTS ${rw}; DROP ROLE IF EXISTS ${app}`);
    await Promise.all([newServer?.stop(), other?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('restores both settings and compares them as a set, whatever their order', async () => {
    const run = await cli(['restore', id, '--to-url-env=NEW_DB_URL', '--with-globals'], { ...env, NEW_DB_URL: newServer.url });
    expect(run.stderr).not.toMatch(/DATABASE PROPERTIES/);
    expect(run.exitCode, run.stderr).toBe(0);
    const database = /Restored the whole database into (\S+) in /.exec(run.stdout)?.[1] ?? '';
    const u = new URL(newServer.url);
    u.pathname = `/${database}`;
    const settings = await withClient(u.toString(), async (c) =>
      (
        await c.query<{ s: string }>(
          `SELECT r.rolname || ': ' || array_to_string(s.setconfig, ', ') AS s FROM pg_db_role_setting s
             JOIN pg_database d ON d.oid = s.setdatabase AND d.datname = current_database() JOIN pg_roles r ON r.oid = s.setrole ORDER BY 1`,
        )
      ).rows.map((r) => r.s),
    );
    expect(settings).toEqual([`${app}: work_mem=8MB`, `${rw}: lock_timeout=5s`]);
  });

  it('a restore that fails after creating roles says which it created, and that they stay', async () => {
    // A role that may create roles and databases, not a superuser: it cannot give the tables, postgres's, to postgres.
    await runSql(other.url, 'CREATE ROLE restorer LOGIN CREATEDB CREATEROLE');
    const u = new URL(other.url);
    u.username = 'restorer';
    const run = await cli(['restore', id, '--to-url-env=NEW_DB_URL', '--with-globals'], { ...env, NEW_DB_URL: u.toString() });
    expect(run.exitCode).toBe(1);
    const failed = run.stderr.slice(run.stderr.indexOf('Restore FAILED:'));
    const created = await withClient(
      other.url,
      async (c) => (await c.query<{ r: string }>('SELECT rolname AS r FROM pg_roles WHERE rolname = ANY($1)', [[rw, app]])).rows,
    );
    expect(created).toHaveLength(2);
    expect(failed).toMatch(new RegExp(`The roles this restore created on ${u.hostname}:${u.port} stay there: [^.]*${app}`));
    expect(failed).toMatch(new RegExp(`stay there: [^.]*${rw}`));
  });
});
