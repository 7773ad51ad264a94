import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runBackup } from '../../../src/postgres/backup/index.ts';
import { databaseUrl, dropDatabase, runSelectiveRestore } from '../../../src/postgres/restore/index.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { backupOptions, silentLog, tempStorage } from '../../support/postgres-helpers.ts';
import { queryRows } from './restore-helpers.ts';

/**
 * A selective restore streaming the archive (no temp space for it): pg_restore -L exits 0 once it has read the
 * table it was asked for, with megabytes of the archive after it unread. zstd stopped then is no failure: before, the
 * restore failed as "does not decompress"; with zstd's output left unread, it hung; read to its end, a restore into
 * a live database held its locks for as long (second readers).
 */
describe('a streamed selective restore of a table early in a large archive', () => {
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  const db = `sel_stream_${process.pid}`;

  beforeAll(async () => {
    source = await createTestDatabase(inject('pgUrl'), 'selstream');
    // "a_small" is dumped first; "z_big" after it holds about 12 MB of text that zstd cannot shrink much.
    await runSql(
      source.url,
      `CREATE TABLE a_small (id int PRIMARY KEY, note text);
       INSERT INTO a_small SELECT g, 'row ' || g FROM generate_series(1, 100) g;
       CREATE TABLE z_big (id int PRIMARY KEY, blob text);
       INSERT INTO z_big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 120000) g;
       CREATE SCHEMA "Reporting Data";
       CREATE MATERIALIZED VIEW "Reporting Data"."Big Totals" AS SELECT count(*) AS n FROM z_big;
       CREATE MATERIALIZED VIEW "Reporting Data"."Small Notes" AS SELECT note FROM "Reporting Data"."Big Totals", a_small WHERE id < 3;`,
    );
    store = await tempStorage();
    manifest = await runBackup(backupOptions(source.url, store.storage));
  }, 60_000);
  afterAll(async () => {
    await dropDatabase(inject('pgUrl'), db);
    await source?.drop();
    await store?.cleanup();
  });

  it('restores the table, stops reading the archive there, and finishes at once', async () => {
    const outcome = await runSelectiveRestore({
      manifest,
      storage: store.storage,
      serverUrl: inject('pgUrl'),
      tables: ['public.a_small'],
      schemas: [],
      into: { database: db, create: true },
      input: 'stream',
      log: silentLog,
    });
    expect(outcome.problems).toEqual([]);
    expect(outcome.restoreMethod).toEqual({ input: 'stream', jobs: 1 });
    expect(outcome.restoredTables.map((t) => [t.name, t.rows])).toEqual([['public.a_small', 100]]);
    // The reporting views read a_small and z_big, but this restore touches neither view: nothing said of them.
    expect(outcome.notes.join('\n')).not.toMatch(/Reporting Data/);
    expect(await queryRows<{ n: number }>(databaseUrl(inject('pgUrl'), db), 'SELECT count(*)::int AS n FROM a_small')).toEqual([{ n: 100 }]);
  }, 30_000);

  it('names each materialized view refreshed from tables restored without rows, directly or through another (QA: 0 rows under a ✅)', async () => {
    const into = `${db}_reporting`;
    try {
      const outcome = await runSelectiveRestore({
        manifest,
        storage: store.storage,
        serverUrl: inject('pgUrl'),
        tables: [],
        schemas: ['Reporting Data'],
        into: { database: into, create: true },
        log: silentLog,
      });
      expect(outcome.problems).toEqual([]);
      expect(outcome.notes).toEqual(
        expect.arrayContaining([
          'Reporting Data.Big Totals reads public.z_big, created without rows here: it holds none of their data (add --table for each to restore them too)',
          'Reporting Data.Small Notes reads public.a_small, public.z_big, created without rows here: it holds none of their data (add --table for each to restore them too)',
        ]),
      );
    } finally {
      await dropDatabase(inject('pgUrl'), into);
    }
  }, 30_000);
});
