import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/postgres/backup/index.ts';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { runSql } from '../support/databases.ts';
import { backupOptions, tempStorage } from '../support/postgres-helpers.ts';

/**
 * docs/deploy.md, "PostgreSQL roles": what a non-superuser backup role needs, measured. A server of its own: the
 * roles made here are cluster-wide, and other test files dump and compare the shared server's roles.
 */
describe('the backup role docs/deploy.md describes', () => {
  let server: EphemeralPostgres;
  const stores: Array<Awaited<ReturnType<typeof tempStorage>>> = [];
  const as = (role: string, db: string) => {
    const u = new URL(server.url);
    u.username = role;
    u.password = 'pw';
    u.pathname = `/${db}`;
    return u.toString();
  };
  const admin = (db: string) => {
    const u = new URL(server.url);
    u.pathname = `/${db}`;
    return u.toString();
  };
  const backUp = async (url: string) => {
    const store = await tempStorage();
    stores.push(store);
    return runBackup(backupOptions(url, store.storage));
  };

  beforeAll(async () => {
    server = await startEphemeralPostgres();
    const schema = await readFile('src/dev/sample-schema.sql', 'utf8');
    for (const db of ['plain', 'rls', 'lo']) {
      await runSql(server.url, `CREATE DATABASE ${db}`);
      await runSql(admin(db), schema);
    }
    await runSql(
      admin('rls'),
      `CREATE TABLE secrets (id int PRIMARY KEY, owner text); INSERT INTO secrets VALUES (1, 'app');
       ALTER TABLE secrets ENABLE ROW LEVEL SECURITY; CREATE POLICY own ON secrets USING (owner = current_user);`,
    );
    await runSql(admin('lo'), `SELECT lo_from_bytea(424242, 'hello'::bytea)`);
    await runSql(
      server.url,
      `CREATE ROLE pgbb_none LOGIN PASSWORD 'pw';
       CREATE ROLE pgbb_backup LOGIN PASSWORD 'pw'; GRANT pg_read_all_data TO pgbb_backup;
       CREATE ROLE pgbb_bypass LOGIN BYPASSRLS PASSWORD 'pw'; GRANT pg_read_all_data TO pgbb_bypass;`,
    );
  });

  afterAll(async () => {
    await server?.stop();
    for (const s of stores) await s.cleanup();
  });

  it('pg_read_all_data is enough for tables, schemas and sequences; roles are dumped without their passwords', async () => {
    const manifest = await backUp(as('pgbb_backup', 'plain'));
    expect(manifest.verification.tables.length).toBeGreaterThan(0);
    expect(manifest.globals).toEqual({ included: true, rolePasswords: false, note: 'role passwords skipped: the backup role is not a superuser' });
  });

  it('without read access the backup fails and says what to grant', async () => {
    await expect(backUp(as('pgbb_none', 'plain'))).rejects.toMatchObject({
      userMessage: expect.stringMatching(/^pg_dump was refused access to schema shop; grant the backup role read access \(e\.g\. the pg_read_all_data role\)/),
    });
  });

  it('a table with row-level security needs BYPASSRLS besides pg_read_all_data', async () => {
    await expect(backUp(as('pgbb_backup', 'rls'))).rejects.toThrow(/query would be affected by row-level security policy for table "secrets"/);
    await expect(backUp(as('pgbb_bypass', 'rls'))).resolves.toMatchObject({ target: 'app' });
  });

  it('large objects need a grant of their own: pg_read_all_data does not cover them', async () => {
    await expect(backUp(as('pgbb_bypass', 'lo'))).rejects.toThrow(/large object/);
    await runSql(admin('lo'), 'GRANT SELECT ON LARGE OBJECT 424242 TO pgbb_backup');
    await expect(backUp(as('pgbb_backup', 'lo'))).resolves.toMatchObject({ target: 'app' });
  });
});
