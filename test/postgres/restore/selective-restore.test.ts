import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { tablesNotInBackup } from '../../../src/commands/named-tables.ts';
import { DATABASE_FILE, runBackup } from '../../../src/postgres/backup/index.ts';
import { databaseUrl, dropDatabase, runSelectiveRestore, type SelectiveRestoreOptions } from '../../../src/postgres/restore/index.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { backupOptions, countsOf, restoreInto, silentLog, tempStorage } from '../../support/postgres-helpers.ts';
import { databaseExists, failure, queryRows } from './restore-helpers.ts';

const schema = await readFile(new URL('../../fixtures/realistic-schema.sql', import.meta.url), 'utf8');

describe('runSelectiveRestore', () => {
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  const created: string[] = [];
  let n = 0;
  const server = () => inject('pgUrl');
  const newName = () => {
    const name = `sel_${process.pid}_${++n}`;
    created.push(name);
    return name;
  };
  const options = (extra: Partial<SelectiveRestoreOptions> & Pick<SelectiveRestoreOptions, 'into'>): SelectiveRestoreOptions => ({
    manifest,
    storage: store.storage,
    serverUrl: server(),
    tables: [],
    schemas: [],
    log: silentLog,
    ...extra,
  });
  const rowsOf = (url: string) => countsOf(url).then((c) => Object.fromEntries(c.tables.map((t) => [`${t.schema}.${t.table}`, t.rows])));

  beforeAll(async () => {
    source = await createTestDatabase(server(), 'selsrc');
    await runSql(source.url, schema);
    store = await tempStorage();
    manifest = await runBackup(backupOptions(source.url, store.storage));
  });
  afterEach(async () => {
    for (const name of created.splice(0)) await dropDatabase(server(), name);
  });
  afterAll(async () => {
    await source?.drop();
    await store?.cleanup();
  });

  describe('into a new database', () => {
    it('restores only the named tables, across schemas, with their data, keys, indexes and triggers', async () => {
      const db = newName();
      const outcome = await runSelectiveRestore(options({ tables: ['shop.customers', 'public."Mixed Case"'], into: { database: db, create: true } }));
      expect(outcome.problems).toEqual([]);
      expect(outcome.selection).toEqual({ tables: ['shop.customers', 'public."Mixed Case"'], schemas: [], into: null, created: true });
      expect(outcome.restoredTables.map((t) => [t.name, t.rows, t.expectedRows])).toEqual([
        ['public.Mixed Case', 2, 2],
        ['shop.customers', 200, 200],
      ]);
      expect(outcome.restoreMs).toBeGreaterThan(0);
      expect(outcome.restoreMethod).toEqual({ input: 'file', jobs: 2 });
      const url = databaseUrl(server(), db);
      expect(await rowsOf(url)).toEqual({ 'public.Mixed Case': 2, 'shop.customers': 200 });
      // What customers needs came along (domain, composite and range types); what belongs to it too.
      const cons = await queryRows<{ conname: string }>(url, `SELECT conname FROM pg_constraint WHERE conrelid = 'shop.customers'::regclass ORDER BY 1`);
      expect(cons.map((c) => c.conname)).toEqual(['customers_email_key', 'customers_name_check', 'customers_pkey']);
      const trg = await queryRows<{ tgname: string }>(url, `SELECT tgname FROM pg_trigger WHERE tgrelid = 'shop.customers'::regclass AND NOT tgisinternal`);
      expect(trg).toEqual([{ tgname: 'customers_touch' }]);
      // The identity sequence continues after the restored rows.
      const next = await queryRows<{ id: string }>(url, `INSERT INTO shop.customers (email, name) VALUES ('new@example.com', 'New') RETURNING id`);
      expect(Number(next[0]?.id)).toBe(201);
    });

    it('restores a partitioned table with its partitions, and says which foreign key it left out', async () => {
      const db = newName();
      const outcome = await runSelectiveRestore(options({ tables: ['orders'], into: { database: db, create: true } }));
      expect(outcome.problems).toEqual([]);
      expect(outcome.restoredTables.map((t) => t.name)).toEqual(['shop.orders_2025', 'shop.orders_2026', 'shop.orders_other']);
      expect(outcome.restoredTables.reduce((s, t) => s + t.rows, 0)).toBe(3000);
      expect(outcome.notes).toEqual(['foreign key orders_customer_id_fkey of shop.orders was not restored: it refers to a table that was not restored']);
      const rows = await queryRows<{ n: number }>(databaseUrl(server(), db), 'SELECT count(*)::int AS n FROM shop.orders');
      expect(rows).toEqual([{ n: 3000 }]);
    });

    it('restores whole schemas, also when streaming the archive (no temp space)', async () => {
      const db = newName();
      const outcome = await runSelectiveRestore(options({ schemas: ['shop'], into: { database: db, create: true }, input: 'stream' }));
      expect(outcome.problems).toEqual([]);
      expect(outcome.restoreMethod).toEqual({ input: 'stream', jobs: 1 });
      const expected = Object.fromEntries(manifest.verification.tables.filter((t) => t.schema === 'shop').map((t) => [`shop.${t.table}`, t.rows]));
      expect(await rowsOf(databaseUrl(server(), db))).toEqual(expected);
    });

    it('refuses unknown names and an existing database before changing anything', async () => {
      const db = newName();
      const err = await failure(runSelectiveRestore(options({ tables: ['shop.nope', 'orders_2099'], into: { database: db, create: true } })));
      expect(err.code).toBe('bad_request');
      expect(err.userMessage).toBe('The backup has no table "shop.nope"; no table "orders_2099". Nothing was restored.');
      expect(await databaseExists(server(), db)).toBe(false);
      const taken = await failure(runSelectiveRestore(options({ tables: ['shop.customers'], into: { database: source.name, create: true } })));
      expect(taken.userMessage).toContain('already exists');
    });

    it('the Slack door (tablesNotInBackup) refuses from the manifest what the restore would refuse, and takes what it would take', () => {
      // The counts leave the partitioned parent out (its rows are its partitions'); the definitions have it.
      expect(manifest.verification.tables.some((t) => t.schema === 'shop' && t.table === 'orders')).toBe(false);
      expect(tablesNotInBackup(manifest, ['shop.orders', 'orders_2026', '"Mixed Case"', 'public."Mixed Case"', 'mixed case'])).toBeNull();
      // Views are left to the restore, which says what they are.
      expect(tablesNotInBackup(manifest, ['shop.paid_orders', 'revenue'])).toBeNull();
      expect(tablesNotInBackup(manifest, ['shop.ordres', 'nope', '"mixed case"', 'a.b.c'])).toBe(
        `Backup \`${manifest.backupId}\` has no table "shop.ordres" (did you mean \`--table=shop.orders\`?); no table "nope"; no table "mixed case" (did you mean \`--table=public."Mixed Case"\`?); "a.b.c" is not a table name; write table or schema.table (quote names with dots or capitals). Nothing was started.`,
      );
      // A manifest without definitions (a backup from before them) is not judged.
      expect(tablesNotInBackup({ ...manifest, definitions: undefined }, ['nope'])).toBeNull();
    });
  });

  describe('into an existing database', () => {
    let copy: Awaited<ReturnType<typeof createTestDatabase>>;
    beforeAll(async () => {
      copy = await createTestDatabase(server(), 'selcopy');
    });
    afterAll(async () => {
      await copy?.drop();
    });

    it('replaces only the named table and leaves every other table untouched', async () => {
      await restoreInto(join(store.root, 'app', manifest.backupId, DATABASE_FILE), copy.url);
      await runSql(
        copy.url,
        `DELETE FROM shop.order_log WHERE order_id > 10; UPDATE shop.customers SET name = 'changed' WHERE id = 1; DELETE FROM shop.room_bookings WHERE id > 40`,
      );
      const outcome = await runSelectiveRestore(options({ tables: ['shop.order_log'], into: { database: copy.name, create: false } }));
      expect(outcome.problems).toEqual([]);
      expect(outcome.selection).toEqual({ tables: ['shop.order_log'], schemas: [], into: copy.name, created: false });
      expect(outcome.restoreMethod).toEqual({ input: 'file', jobs: 1 });
      expect(outcome.restoredTables.map((t) => [t.name, t.rows])).toEqual([['shop.order_log', 3000]]);
      const rows = await rowsOf(copy.url);
      expect(rows['shop.order_log']).toBe(3000);
      expect(rows['shop.room_bookings']).toBe(40);
      expect(await queryRows(copy.url, 'SELECT name FROM shop.customers WHERE id = 1')).toEqual([{ name: 'changed' }]);
    });

    it('replaces a table other tables point at, re-adding and re-checking their foreign keys', async () => {
      await runSql(copy.url, `UPDATE shop.customers SET name = 'changed again' WHERE id = 2`);
      const outcome = await runSelectiveRestore(options({ tables: ['shop.customers'], into: { database: copy.name, create: false } }));
      expect(outcome.problems).toEqual([]);
      expect(await queryRows(copy.url, 'SELECT name FROM shop.customers WHERE id = 2')).toEqual([{ name: 'Customer 2' }]);
      // The keys pointing at it are back, each partition's copy included, exactly as in the source.
      const fks = (url: string) =>
        queryRows(
          url,
          `SELECT conrelid::regclass::text AS t, conname FROM pg_constraint WHERE contype = 'f' AND confrelid = 'shop.customers'::regclass ORDER BY 1, 2`,
        );
      expect(await fks(copy.url)).toEqual(await fks(source.url));
      expect((await fks(copy.url)).map((f) => f.t)).toContain('sessions');
    });

    it('leaves the database exactly as it was when the restore fails halfway', async () => {
      // sessions rows refer to customers 1–40; with customer 5 gone, re-adding the foreign key fails after the
      // table was dropped, recreated and filled: everything must roll back.
      await runSql(
        copy.url,
        `DELETE FROM shop.shipments WHERE order_id IN (SELECT id FROM shop.orders WHERE customer_id = 5);
         DELETE FROM shop.orders WHERE customer_id = 5;
         DELETE FROM shop.customers WHERE id = 5; -- cascades to its session
         DELETE FROM public.sessions WHERE customer_id > 30`,
      );
      const before = await countsOf(copy.url);
      const outcome = await runSelectiveRestore(options({ tables: ['sessions'], into: { database: copy.name, create: false } }));
      expect(outcome.problems).toHaveLength(1);
      expect(outcome.problems).toEqual([
        `psql failed: ERROR: insert or update on table "sessions" violates foreign key constraint "sessions_customer_id_fkey" (Key (customer_id)=(5) is not present in table "customers"); ${copy.name} was left as it was`,
      ]);
      expect(await countsOf(copy.url)).toEqual(before);
      expect(await databaseExists(server(), copy.name)).toBe(true);
    });

    it('refuses before starting when a view depends on the table, naming it; nothing changes', async () => {
      await runSql(copy.url, 'CREATE VIEW public.recent_log AS SELECT * FROM shop.order_log WHERE order_id > 2990');
      const before = await countsOf(copy.url);
      try {
        await expect(runSelectiveRestore(options({ tables: ['shop.order_log'], into: { database: copy.name, create: false } }))).rejects.toThrow(
          /would drop what depends on them: public\.recent_log \(on shop\.order_log\)\. .*nothing was changed/,
        );
        await expect(runSelectiveRestore(options({ schemas: ['shop'], into: { database: copy.name, create: false } }))).rejects.toThrow(/public\.recent_log/);
        expect(await countsOf(copy.url)).toEqual(before);
      } finally {
        await runSql(copy.url, 'DROP VIEW public.recent_log');
      }
    });

    it('stops at any other dependent psql meets, without hanging on the data still to come; the database is left as it was', async () => {
      // order_log's data (~150 kB) is more than a pipe holds: pg_restore must be stopped once psql gives up. A
      // function returning the table's row type is a dependent no view check sees.
      await runSql(
        copy.url,
        `CREATE FUNCTION public.latest_log() RETURNS SETOF shop.order_log LANGUAGE sql AS 'SELECT * FROM shop.order_log ORDER BY order_id DESC LIMIT 1';
         DELETE FROM shop.order_log WHERE order_id < 100`,
      );
      const before = await countsOf(copy.url);
      try {
        const outcome = await runSelectiveRestore(options({ tables: ['shop.order_log'], into: { database: copy.name, create: false } }));
        expect(outcome.problems).toHaveLength(1);
        expect(outcome.problems[0]).toMatch(
          /^psql failed: ERROR: cannot drop table shop\.order_log because other objects depend on it \(function public\.latest_log\(\) depends on type shop\.order_log\); /,
        );
        expect(outcome.problems[0]).toContain(`${copy.name} was left as it was`);
        expect(await countsOf(copy.url)).toEqual(before);
        const schemaOutcome = await runSelectiveRestore(options({ schemas: ['shop'], into: { database: copy.name, create: false } }));
        expect(schemaOutcome.problems[0]).toContain('function public.latest_log() depends on type shop.order_log');
        expect(await countsOf(copy.url)).toEqual(before);
      } finally {
        await runSql(copy.url, 'DROP FUNCTION public.latest_log()');
      }
    });

    it('replaces a whole schema in place, partitioned tables, views and the materialized view included', async () => {
      await runSql(copy.url, `DELETE FROM shop.shipments; DELETE FROM shop.orders WHERE id > 100; UPDATE public."Mixed Case" SET "Note" = 'kept'`);
      const outcome = await runSelectiveRestore(options({ schemas: ['shop'], into: { database: copy.name, create: false } }));
      expect(outcome.problems).toEqual([]);
      const rows = await rowsOf(copy.url);
      for (const t of manifest.verification.tables.filter((x) => x.schema === 'shop')) expect(rows[`shop.${t.table}`]).toBe(t.rows);
      expect(await queryRows(copy.url, `SELECT DISTINCT "Note" FROM public."Mixed Case"`)).toEqual([{ Note: 'kept' }]);
      expect(await queryRows(copy.url, 'SELECT count(*)::int AS n FROM shop.revenue')).toEqual([{ n: 200 }]);
    });
  });
});
