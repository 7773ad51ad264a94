import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DATABASE_FILE, GLOBALS_FILE, runBackup } from '../../../src/postgres/backup/index.ts';
import { ManifestSchema, type Manifest } from '../../../src/storage/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { backupOptions, countsOf, hookedStorage, listArtifact, restoreInto, tempStorage, withClient } from '../../support/postgres-helpers.ts';

const schema = await readFile(new URL('../../fixtures/realistic-schema.sql', import.meta.url), 'utf8');

describe('runBackup of a realistic schema', () => {
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  const phases: string[] = [];

  beforeAll(async () => {
    source = await createTestDatabase(inject('pgUrl'), 'src');
    await runSql(source.url, schema);
    store = await tempStorage();
    manifest = await runBackup(backupOptions(source.url, store.storage, { onProgress: (p) => phases.push(p.phase) }));
  });
  afterAll(async () => {
    await source?.drop();
    await store?.cleanup();
  });

  it('writes a valid manifest last, with the artifacts, versions and snapshot it describes', async () => {
    expect(ManifestSchema.parse(manifest)).toEqual(manifest);
    expect(await store.storage.readManifest('app', manifest.backupId)).toEqual(manifest);
    expect(manifest.artifacts.map((a) => [a.file, a.role, a.format, a.compression])).toEqual([
      [DATABASE_FILE, 'database', 'custom', 'zstd'],
      [GLOBALS_FILE, 'globals', 'plain', 'zstd'],
    ]);
    const db = manifest.artifacts[0];
    expect(db?.rawBytes).toBeGreaterThan(db?.bytes ?? Infinity);
    expect(manifest.database.name).toBe(source.name);
    expect(manifest.database.pgDumpVersion).toMatch(/^pg_dump \(PostgreSQL\) \d+/);
    expect(manifest.snapshotId).toMatch(/^[0-9A-F]+-[0-9A-F]+-\d+$/);
    expect(manifest.globals).toEqual({ included: true, rolePasswords: true, note: null });
    expect(phases.filter((p, i) => phases[i - 1] !== p)).toEqual(['connecting', 'counting', 'dumping', 'committing']);
    expect(await store.storage.list()).toEqual([manifest]);
  });

  it('counts rows per leaf table and objects as defined, extension objects excluded', () => {
    const rows = Object.fromEntries(manifest.verification.tables.map((t) => [`${t.schema}.${t.table}`, t.rows]));
    expect(rows).toMatchObject({ 'shop.customers': 200, 'shop.order_log': 3000, 'public.sessions': 40, 'public.Mixed Case': 2 });
    expect((rows['shop.orders_2025'] ?? 0) + (rows['shop.orders_2026'] ?? 0) + (rows['shop.orders_other'] ?? 0)).toBe(3000);
    expect(rows['shop.orders']).toBeUndefined(); // a partitioned parent holds no rows of its own
    expect(manifest.verification.objects).toMatchObject({
      schemas: 2,
      partitionedTables: 1,
      tables: 9,
      aggregates: 1,
      functions: 4, // touch_updated_at, log_order, add_cents, cancel_order (a procedure); not range constructors
      views: 1,
      materializedViews: 1,
      domains: 2,
      types: 3, // order_status, address, price_band
      extensions: 2, // plpgsql, btree_gist
    });
    // Constraints and triggers on a partitioned table are copied onto each partition; an FK that references a
    // partitioned table gets one row per referenced partition. A restore recreates exactly these.
    expect(manifest.verification.objects.constraints).toEqual({ p: 9, f: 9, u: 1, c: 3, x: 1 });
    expect(manifest.verification.objects).toMatchObject({ triggers: 5, sequences: 5, indexes: 16 });
  });

  it('stores an archive pg_restore can list', async () => {
    const listing = await listArtifact(join(store.root, 'app', manifest.backupId, DATABASE_FILE));
    expect(listing).toContain('TABLE shop orders_2025');
    expect(listing).toContain('MATERIALIZED VIEW DATA shop revenue');
  });

  it('restores into a new database with identical row and object counts', async () => {
    const target = await createTestDatabase(inject('pgUrl'), 'restored');
    try {
      await restoreInto(join(store.root, 'app', manifest.backupId, DATABASE_FILE), target.url);
      expect(await countsOf(target.url)).toEqual(manifest.verification);
    } finally {
      await target.drop();
    }
  });
});

describe('runBackup snapshot consistency', () => {
  it('leaves out rows and tables committed after the snapshot, in the counts and in the dump', async () => {
    const source = await createTestDatabase(inject('pgUrl'), 'snap');
    const restored = await createTestDatabase(inject('pgUrl'), 'snapr');
    const store = await tempStorage();
    try {
      await runSql(source.url, schema);
      // beforeDump runs after the snapshot was exported and counted, just before pg_dump starts.
      const storage = hookedStorage(store.storage, {
        beforeDump: () =>
          runSql(
            source.url,
            `INSERT INTO public."Mixed Case" VALUES (3, 'late'), (4, 'later');
             DELETE FROM public.sessions WHERE customer_id % 2 = 0;
             CREATE TABLE public.late_table (id int PRIMARY KEY); INSERT INTO public.late_table VALUES (1);`,
          ),
      });
      const manifest = await runBackup(backupOptions(source.url, storage));
      const counted = Object.fromEntries(manifest.verification.tables.map((t) => [t.table, t.rows]));
      expect(counted['Mixed Case']).toBe(2);
      expect(counted.sessions).toBe(40);
      expect(counted.late_table).toBeUndefined();
      const live = await withClient(source.url, async (c) => (await c.query('SELECT count(*)::int AS n FROM public."Mixed Case"')).rows[0]?.n);
      expect(live).toBe(4);

      await restoreInto(join(store.root, 'app', manifest.backupId, DATABASE_FILE), restored.url);
      expect(await countsOf(restored.url)).toEqual(manifest.verification);
    } finally {
      await source.drop();
      await restored.drop();
      await store.cleanup();
    }
  });
});
