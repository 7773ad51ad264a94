import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { describeDumpProgress, dumpEstimate, runBackup } from '../../../src/postgres/backup/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { backupOptions, tempStorage } from '../../support/postgres-helpers.ts';

const MB = 1024 * 1024;

describe('backup progress with a total and the time left', () => {
  it('says what was read, of the last backup’s size, and the time left at the rate so far', () => {
    const e = { expectedRawBytes: 400 * MB };
    expect(describeDumpProgress(100 * MB, 30_000, e)).toBe('100 MB of ~400 MB read (25 %), about 1 min 30 s left');
    // Too early for a rate: no time promised.
    expect(describeDumpProgress(5 * MB, 1000, e)).toBe('5.0 MB of ~400 MB read (1 %)');
    // Past the estimate: never "0 s left", never over 100 %.
    expect(describeDumpProgress(450 * MB, 60_000, e)).toBe("450 MB read, more than the last backup's ~400 MB");
    // A first backup is said against its tables' size on disk, when known; the last backup's size wins over it.
    expect(describeDumpProgress(100 * MB, 30_000, { expectedRawBytes: null }, 400 * MB)).toBe(
      '100 MB of ~400 MB of tables on disk read (25 %), about 1 min 30 s left',
    );
    expect(describeDumpProgress(250 * MB, 30_000, { expectedRawBytes: null }, 200 * MB)).toBe('250 MB read, more than the ~200 MB the tables take on disk');
    expect(describeDumpProgress(100 * MB, 30_000, e, 200 * MB)).toBe('100 MB of ~400 MB read (25 %), about 1 min 30 s left');
    // With neither, only what was read.
    expect(describeDumpProgress(100 * MB, 30_000, { expectedRawBytes: null })).toBe('100 MB read');
  });
});

describe('dumpEstimate', () => {
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    store = await tempStorage();
    db = await createTestDatabase(inject('pgUrl'), 'estimate');
    await runSql(db.url, 'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g');
    // Vacuumed now, so its free space and visibility maps exist before the dump: autovacuum making them during the
    // test grew pg_table_size by 32 KB between the dump's report and the check (a CI failure).
    await runSql(db.url, 'VACUUM ANALYZE t');
  });
  afterAll(async () => {
    await store?.cleanup();
    await db?.drop();
  });

  it('takes the newest backup’s archive size as pg_dump wrote it, and none before the first backup', async () => {
    const options = backupOptions(db.url, store.storage);
    expect(await dumpEstimate(store.storage, options.target.name)).toEqual({ expectedRawBytes: null });
    const sizes: Array<number | undefined> = [];
    const m = await runBackup({ ...options, onProgress: (p) => p.phase === 'dumping' && sizes.push(p.tablesBytes) });
    // The dump's reports carry the tables' size on disk from its first on: the first backup's total.
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query<{ bytes: string }>("SELECT pg_table_size('t')::text AS bytes").finally(() => c.end());
    expect(sizes.length).toBeGreaterThan(0);
    expect(sizes[0]).toBe(Number(rows[0]?.bytes));
    expect(sizes[0]).toBeGreaterThan(0);
    const raw = m.artifacts.find((a) => a.role === 'database')?.rawBytes;
    expect(raw).toBeGreaterThan(0);
    expect(await dumpEstimate(store.storage, options.target.name)).toEqual({ expectedRawBytes: raw });
  });
});
