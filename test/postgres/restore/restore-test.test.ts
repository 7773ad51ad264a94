import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DATABASE_FILE, runBackup } from '../../../src/postgres/backup/index.ts';
import { runRestoreTest, scratchName, type RestoreTestOptions } from '../../../src/postgres/restore/index.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { backupOptions, silentLog, tempStorage } from '../../support/postgres-helpers.ts';
import { databaseExists, loggingPgBin } from './restore-helpers.ts';

const schema = await readFile(new URL('../../fixtures/realistic-schema.sql', import.meta.url), 'utf8');

describe('runRestoreTest', () => {
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let bin: Awaited<ReturnType<typeof loggingPgBin>>;
  let manifest: Manifest;
  let tempDir: string;
  let n = 0;
  const serverUrl = () => inject('pgUrl');

  const options = (extra: Partial<RestoreTestOptions> = {}): RestoreTestOptions => ({
    manifest,
    storage: store.storage,
    serverUrl: serverUrl(),
    scratchKey: `job:restore-test-${process.pid}-${++n}`,
    pgBinDir: bin.binDir,
    tempDir,
    log: silentLog,
    ...extra,
  });

  beforeAll(async () => {
    source = await createTestDatabase(serverUrl(), 'rtsrc');
    await runSql(source.url, schema);
    store = await tempStorage();
    bin = await loggingPgBin();
    tempDir = await mkdtemp(join(tmpdir(), 'pgbb-rt-tmp-'));
    manifest = await runBackup(backupOptions(source.url, store.storage));
  });
  afterAll(async () => {
    await source?.drop();
    await store?.cleanup();
    await bin?.cleanup();
    await rm(tempDir, { recursive: true, force: true });
  });

  it('passes on the realistic schema, in parallel from a private temp file, and drops its scratch database', async () => {
    const phases: string[] = [];
    const before = (await bin.calls()).length;
    const o = options({ onProgress: (p) => phases.push(p.phase), smokeQueries: [{ name: 'paid orders', sql: 'SELECT count(*) FROM shop.paid_orders' }] });
    const outcome = await runRestoreTest(o);

    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
    expect(outcome.database).toBe(scratchName(o.scratchKey));
    expect(outcome.database).toMatch(/^pgbb_rt_[0-9a-f]{6}_[0-9a-f]{12}$/);
    expect(outcome.dropped).toBe(true);
    expect(await databaseExists(serverUrl(), outcome.database)).toBe(false);
    expect(outcome.restoreMs).toBeGreaterThan(0);
    expect(outcome.restoredBytes).toBeGreaterThan(1_000_000);
    expect(outcome.restoreMethod).toEqual({ input: 'file', jobs: 2 });
    expect(outcome.checked.checksums).toEqual(manifest.artifacts.map((a) => ({ file: a.file, ok: true })));
    expect(outcome.checked.tables).toBe(manifest.verification.tables.length);
    expect(outcome.checked.objects).toContain('constraints (f)');
    expect(outcome.checked.smokeQueries).toEqual([{ name: 'paid orders', ok: true, error: null }]);
    expect(phases.filter((p, i) => phases[i - 1] !== p)).toEqual(['verifying-checksums', 'restoring', 'verifying', 'smoke-queries', 'verifying', 'dropping']);
    expect(outcome.durationMs).toBeGreaterThanOrEqual(outcome.restoreMs);

    // Two pg_restore passes with -j 2 (see parallel-restore.ts), reading a file, connecting to the scratch db.
    const all = (await bin.calls()).slice(before);
    // First the database's own entries (locale, settings, comment) as SQL, no connection: db-properties.ts.
    expect(all.slice(0, 2).map((a) => a.slice(0, 2))).toEqual([
      ['--create', '--list'],
      ['--create', '--use-list'],
    ]);
    expect(all[1]).toEqual(expect.arrayContaining(['--file', '-']));
    // One more reads the archive back for the comparison with the restored copy (verify/render.ts).
    expect(all.filter((a) => a.includes('--file=-'))).toHaveLength(1);
    const calls = all.slice(2).filter((a) => !a.includes('--file=-'));
    expect(calls).toHaveLength(2);
    for (const args of calls) {
      expect(args).toContain('--jobs=2');
      expect(args).toEqual(expect.arrayContaining(['--no-owner', '--no-acl', '--exit-on-error', `--dbname=dbname='${outcome.database}'`]));
      expect(args.at(-1)).toMatch(/pgbb-restore-[^/]+\/database\.pgdump$/);
    }
    expect(calls.map((a) => a.filter((x) => x.startsWith('--section=')))).toEqual([['--section=pre-data', '--section=data'], ['--section=post-data']]);
    // The decompressed archive is gone.
    expect(await readdir(tempDir)).toEqual([]);
  });

  it('streams into a single-job pg_restore when told to (as it does without temp space)', async () => {
    const before = (await bin.calls()).length;
    const outcome = await runRestoreTest(options({ input: 'stream' }));
    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
    expect(outcome.restoreMethod).toEqual({ input: 'stream', jobs: 1 });
    const all = (await bin.calls()).slice(before);
    expect(all.slice(0, 2).map((a) => a[0])).toEqual(['--create', '--create']); // the database's entries (db-properties.ts)
    // One more reads the archive back for the comparison with the restored copy (verify/render.ts).
    expect(all.filter((a) => a.includes('--file=-'))).toHaveLength(1);
    const calls = all.slice(2).filter((a) => !a.includes('--file=-'));
    expect(calls).toHaveLength(1);
    expect(calls[0]?.some((a) => a.startsWith('--jobs'))).toBe(false);
    expect(await databaseExists(serverUrl(), outcome.database)).toBe(false);
  });

  it('fails on a count that differs from the manifest, with one exact sentence per difference', async () => {
    const edited: Manifest = structuredClone(manifest);
    const customers = edited.verification.tables.find((t) => t.schema === 'shop' && t.table === 'customers');
    if (!customers) throw new Error('fixture has no shop.customers');
    customers.rows = 1234;
    edited.verification.tables.push({ schema: 'shop', table: 'orders_2024', rows: 946 });
    edited.verification.objects.indexes += 1;
    edited.verification.objects.constraints.f -= 1;

    const outcome = await runRestoreTest(options({ manifest: edited }));
    expect(outcome.passed).toBe(false);
    expect(outcome.problems).toEqual([
      'shop.customers: 1,234 rows expected, 200 restored',
      'table shop.orders_2024 missing after restore',
      `constraints (f): ${manifest.verification.objects.constraints.f - 1} expected, ${manifest.verification.objects.constraints.f} restored`,
      `indexes: ${manifest.verification.objects.indexes + 1} expected, ${manifest.verification.objects.indexes} restored`,
    ]);
    expect(outcome.dropped).toBe(true);
    expect(await databaseExists(serverUrl(), outcome.database)).toBe(false);
  });

  it('runs the smoke queries after the content comparison, so one that writes to the copy is no difference', async () => {
    // The counts read the copy beside the comparison; a smoke query may write, and waits for the comparison to end.
    const outcome = await runRestoreTest(
      options({ smokeQueries: [{ name: 'touch every customer', sql: "UPDATE shop.customers SET email = email || '.smoke'" }] }),
    );
    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
    expect(outcome.checked.smokeQueries).toEqual([{ name: 'touch every customer', ok: true, error: null }]);
    expect(outcome.checked).toMatchObject({ level: 'content', archive: { compared: true, differing: { tables: 0, definitions: 0, largeObjects: 0 } } });
  });

  it('fails when a smoke query fails, naming the query, and still runs the others', async () => {
    const outcome = await runRestoreTest(
      options({
        smokeQueries: [
          { name: 'revenue', sql: 'SELECT shop.total_cents(total) FROM shop.orders' },
          { name: 'legacy report', sql: 'SELECT * FROM shop.no_such_view' },
          { name: 'customers', sql: 'SELECT count(*) FROM shop.customers' },
        ],
      }),
    );
    expect(outcome.passed).toBe(false);
    expect(outcome.problems).toEqual(['smoke query "legacy report" failed: relation "shop.no_such_view" does not exist']);
    expect(outcome.checked.smokeQueries.map((q) => [q.name, q.ok])).toEqual([
      ['revenue', true],
      ['legacy report', false],
      ['customers', true],
    ]);
    expect(await databaseExists(serverUrl(), outcome.database)).toBe(false);
  });

  it('fails with "artifact corrupted" on a flipped byte, before creating a database or running pg_restore', async () => {
    const corrupt = await runBackup(backupOptions(source.url, store.storage));
    const path = join(store.root, 'app', corrupt.backupId, DATABASE_FILE);
    const fh = await open(path, 'r+');
    try {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, 1000);
      b[0] = (b[0] ?? 0) ^ 0x01;
      await fh.write(b, 0, 1, 1000);
    } finally {
      await fh.close();
    }
    const before = (await bin.calls()).length;
    // An unreachable server proves it: the outcome comes back without a single connection attempt.
    const outcome = await runRestoreTest(options({ manifest: corrupt, serverUrl: 'postgres://postgres@127.0.0.1:1/postgres' }));
    const db = corrupt.artifacts.find((a) => a.file === DATABASE_FILE);
    expect(outcome.passed).toBe(false);
    expect(outcome.problems).toHaveLength(1);
    expect(outcome.problems[0]).toMatch(
      new RegExp(`^artifact corrupted: database\\.pgdump\\.zst \\(sha256 ${db?.sha256.slice(0, 12)}… expected, [0-9a-f]{12}… found\\)$`),
    );
    expect(outcome.checked.checksums).toEqual([
      { file: DATABASE_FILE, ok: false },
      { file: 'globals.sql.zst', ok: true },
    ]);
    expect(outcome).toMatchObject({ restoreMs: 0, restoredBytes: null, restoreMethod: null, dropped: true });
    expect((await bin.calls()).length).toBe(before);
    expect(await databaseExists(serverUrl(), outcome.database)).toBe(false);
    // The decompression that ran beside the checksums was stopped and its temp file removed.
    expect(await readdir(tempDir)).toEqual([]);
  });

  it('fails, without a stack of noise, on an artifact that matches its checksum but does not decompress', async () => {
    // Corrupted before it was hashed (say, bad RAM on the backup host): the checksums cannot tell, zstd can.
    const bad = await runBackup(backupOptions(source.url, store.storage));
    const path = join(store.root, 'app', bad.backupId, DATABASE_FILE);
    const bytes = await readFile(path);
    bytes.fill(0x55, 2000, 2400);
    await writeFile(path, bytes);
    const edited: Manifest = structuredClone(bad);
    const a = edited.artifacts.find((x) => x.file === DATABASE_FILE);
    if (!a) throw new Error('no database artifact');
    a.sha256 = createHash('sha256').update(bytes).digest('hex');
    const outcome = await runRestoreTest(options({ manifest: edited }));
    expect(outcome.passed).toBe(false);
    expect(outcome.problems).toHaveLength(1);
    expect(outcome.problems[0]).toMatch(/^the database artifact does not decompress: /);
    expect(outcome.dropped).toBe(true);
    expect(await databaseExists(serverUrl(), outcome.database)).toBe(false);
    expect(await readdir(tempDir)).toEqual([]);
  });

  it('runs two tests of the same backup at once without colliding', async () => {
    const [a, b] = await Promise.all([runRestoreTest(options()), runRestoreTest(options())]);
    expect(a.passed && b.passed).toBe(true);
    expect(a.database).not.toBe(b.database);
    expect(await databaseExists(serverUrl(), a.database)).toBe(false);
    expect(await databaseExists(serverUrl(), b.database)).toBe(false);
    expect(await readdir(tempDir)).toEqual([]);
  });
});

describe('runRestoreTest of a database whose name needs quoting', () => {
  it.each(['my-app', 'Weird DB'])('passes for "%s": pg_dump’s \\encoding line before \\connect is not a difference', async (prefix) => {
    const source = await createTestDatabase(inject('pgUrl'), prefix);
    const store = await tempStorage();
    try {
      await runSql(source.url, 'CREATE TABLE "Post" (id int PRIMARY KEY, "Title" text); INSERT INTO "Post" VALUES (1, \'a\'), (2, \'b\');');
      const manifest = await runBackup(backupOptions(source.url, store.storage));
      expect(manifest.database.name).toBe(source.name);
      const outcome = await runRestoreTest({
        manifest,
        storage: store.storage,
        serverUrl: inject('pgUrl'),
        scratchKey: `job:quoted-${prefix}`,
        log: silentLog,
      });
      expect(outcome.problems).toEqual([]);
      expect(outcome.passed).toBe(true);
    } finally {
      await source.drop();
      await store.cleanup();
    }
  });
});
