import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runSelectiveRestore } from '../../../src/postgres/restore/index.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import type { AppDatabase } from '../../support/app-database.ts';
import { appBackedUp } from '../../support/app-backups.ts';
import { runSql } from '../../support/databases.ts';
import { fingerprint } from '../../support/fingerprint.ts';
import { parseRestoreText } from '../../../src/commands/restore-text.ts';

/** The table as /restore's text gives it to the restore (the way Slack and the CLI reach it). */
function parseRestoreTextTables(option: string): string {
  const r = parseRestoreText(`app-20261204T020000Z ${option}`);
  if (r.verb !== 'restore' || r.tables.length !== 1) throw new Error(`not parsed: ${JSON.stringify(r)}`);
  return r.tables[0] as string;
}
import { silentLog, type tempStorage, withClient } from '../../support/postgres-helpers.ts';

/** Selective restores of an application-shaped database: what they leave out is said, never reported as restored. */
describe('a selective restore of an application database', () => {
  let app: AppDatabase;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  let tempDir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ app, store, manifest, tempDir, cleanup } = await appBackedUp(inject('pgUrl'), 'sel'));
  });
  afterAll(async () => cleanup?.());

  it('of a table named as the application names it: public."Audit Log", a space and capitals', async () => {
    const database = `${app.name}_audit`;
    try {
      const outcome = await runSelectiveRestore({
        manifest,
        storage: store.storage,
        serverUrl: inject('pgUrl'),
        tables: [parseRestoreTextTables('--table=public."Audit Log"')],
        schemas: [],
        into: { database, create: true },
        tempDir,
        log: silentLog,
      });
      expect(outcome.problems).toEqual([]);
      expect(outcome.restoredTables.map((t) => [t.name, t.rows])).toEqual([['public.Audit Log', 400]]);
      // The new database is the source's kind of database: its collation provider and locale, its settings and comment
      // (QA: ICU's order of 'apple, Banana, Zebra' came back as libc's, search_path and the comment were gone).
      const props = async (db: string) =>
        withClient(inject('pgUrl'), async (c) => {
          const { rows } = await c.query<{ provider: string; icu: string | null; comment: string | null; settings: string[] | null }>(
            `SELECT d.datlocprovider AS provider, d.daticulocale AS icu, shobj_description(d.oid, 'pg_database') AS comment,
                    (SELECT setconfig FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings
             FROM pg_database d WHERE d.datname = $1`,
            [db],
          );
          return rows[0];
        });
      const restored = await props(database);
      expect(restored).toEqual(await props(app.name));
      expect(restored).toMatchObject({ provider: 'i', icu: 'en-US', comment: "the application's database" });
    } finally {
      await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    }
  });

  it('of a schema with a view across schemas: restores it, and says what it left out and why (no raw foreign-key error)', async () => {
    const database = `${app.name}_billing`;
    try {
      const outcome = await runSelectiveRestore({
        manifest,
        storage: store.storage,
        serverUrl: inject('pgUrl'),
        tables: [],
        schemas: ['billing'],
        into: { database, create: true },
        tempDir,
        log: silentLog,
      });
      expect(outcome.notes).toContain('large objects are not in a selective restore: restore the whole database (no --table or --schema) to get them back');
      expect(outcome.notes).toContain('materialized views refreshed from the restored tables, not restored as dumped: billing.MonthlyTotals');
      // billing's view over public."User" pulls that table in, without its rows: said, with what to add, and the
      // foreign key that would have failed on the first invoice is left out and named (it once failed the restore).
      expect(outcome.notes).toContain('public.User was created without its rows: billing.UserBalance needs it; add --table=public."User" to restore them too');
      expect(outcome.notes).toContain('foreign key Invoice_userId_fkey of billing.Invoice was not restored: it refers to a table that was not restored');
      expect(outcome.problems).toEqual([]);
      expect(outcome.restoredTables.map((t) => [t.name, t.rows])).toEqual(expect.arrayContaining([['billing.Invoice', 250]]));
    } finally {
      await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    }
  });

  describe('into the existing database', () => {
    const into = (tables: string[], schemas: string[] = []) =>
      runSelectiveRestore({
        manifest,
        storage: store.storage,
        serverUrl: inject('pgUrl'),
        tables,
        schemas,
        into: { database: app.name, create: false },
        tempDir,
        log: silentLog,
      });

    it('refuses before starting to replace a table a view depends on, naming the view; nothing changes', async () => {
      const before = await fingerprint(app.url);
      await expect(into(['public."User"'])).rejects.toThrow(
        // What following the advice overwrites besides is named, so nobody loses a table they did not name (QA).
        `would drop what depends on them: billing.UserBalance (on public.User). Restore the views with them (add --schema=billing: --table= names tables only); that also overwrites billing."Invoice" with the backup's rows, losing what was written to them since. Or restore into a new database; nothing was changed.`,
      );
      expect(await fingerprint(app.url)).toEqual(before);
      // The advice works as given: the view's schema with the table, both as they were at the backup.
      const followed = await into(['public."User"'], ['billing']);
      expect(followed.problems).toEqual([]);
      expect(followed.restoredTables.map((t) => t.name)).toEqual(expect.arrayContaining(['public.User', 'billing.Invoice']));
    });

    it('keeps owners and grants of a replaced table: the application role can still read it', async () => {
      const before = await fingerprint(app.url);
      await runSql(app.url, 'DELETE FROM public."Post" WHERE id % 2 = 0');
      const outcome = await into(['public."Post"']);
      expect(outcome.problems).toEqual([]);
      const after = await fingerprint(app.url);
      expect(after.tables['public."Post"']).toEqual(before.tables['public."Post"']);
      expect(after.tables['public."Post"']?.acl).toContain(`${app.role}=arw/`);
    });
  });
});
