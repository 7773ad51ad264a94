import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defaultTarget } from '../../src/config.ts';
import { dumpScopeArgs, patternPartRegex, scopeParams } from '../../src/postgres/dump-scope.ts';
import { DATABASE_FILE, runBackup } from '../../src/postgres/backup/index.ts';
import { runRestoreTest } from '../../src/postgres/restore/index.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { backupOptions, countsOf, listArtifact, silentLog, tempStorage } from '../support/postgres-helpers.ts';

describe('pg_dump patterns as regular expressions', () => {
  it('reads them as pg_dump does: unquoted letters fold to lower case, * and ? are wildcards, the rest is literal', () => {
    expect(patternPartRegex('audit_*')).toBe('^(audit_.*)$');
    expect(patternPartRegex('Log?')).toBe('^(log.)$');
    expect(patternPartRegex('a$b')).toBe('^(a\\$b)$');
    expect(patternPartRegex('"MixedCase"')).toBe('^(MixedCase)$');
  });

  it('splits schema from table on the dot, and leaves unqualified patterns to any schema', () => {
    expect(scopeParams({ schemas: ['shop', 'app_*'], excludeTables: ['audit_log', 'shop.tmp_*'] })).toEqual([
      ['^(shop)$', '^(app_.*)$'],
      [null, '^(shop)$'],
      ['^(audit_log)$', '^(tmp_.*)$'],
    ]);
    expect(scopeParams(undefined)).toEqual([[], [], []]);
  });

  it('becomes one argv word per pattern', () => {
    expect(dumpScopeArgs({ schemas: ['shop'], excludeTables: ['public.audit_*'] })).toEqual(['--schema=shop', '--exclude-table=public.audit_*']);
  });
});

describe('a target that excludes tables or limits schemas', () => {
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let tempDir: string;
  let n = 0;

  beforeAll(async () => {
    source = await createTestDatabase(inject('pgUrl'), 'scope');
    await runSql(source.url, await readFile(new URL('../../src/dev/sample-schema.sql', import.meta.url), 'utf8'));
    // A serial (not identity) sequence: pg_dump keeps it when its table is excluded, so the counts must too.
    await runSql(
      source.url,
      `CREATE TABLE public.audit_log (id serial PRIMARY KEY, note text NOT NULL);
      CREATE INDEX audit_log_note ON public.audit_log (note);
      INSERT INTO public.audit_log (note) SELECT 'n' || g FROM generate_series(1, 50) g;
      CREATE TABLE public.settings (k text PRIMARY KEY, v text); INSERT INTO settings VALUES ('a', 'b');`,
    );
    store = await tempStorage();
    tempDir = await mkdtemp(join(tmpdir(), 'pgbb-scope-'));
  });
  afterAll(async () => {
    await source?.drop();
    await store?.cleanup();
    await rm(tempDir, { recursive: true, force: true });
  });

  const restoreTest = (manifest: Awaited<ReturnType<typeof runBackup>>) =>
    runRestoreTest({ manifest, storage: store.storage, serverUrl: inject('pgUrl'), scratchKey: `job:scope-${process.pid}-${++n}`, tempDir, log: silentLog });
  const artifact = (m: Awaited<ReturnType<typeof runBackup>>) => join(store.root, m.target, m.backupId, DATABASE_FILE);

  it('leaves excluded tables out of the dump and the counts, and the backup passes its restore test without them', async () => {
    const target = { ...defaultTarget('scoped', source.url), excludeTables: ['shop.delivery_*', 'audit_log'] };
    const m = await runBackup(backupOptions(source.url, store.storage, { target }));
    const tables = m.verification.tables.map((t) => `${t.schema}.${t.table}`);
    expect(tables).not.toContain('shop.delivery_slots');
    expect(tables).not.toContain('public.audit_log');
    expect(tables).toContain('public.settings');
    expect(m.scope).toEqual({ schemas: [], excludeTables: ['shop.delivery_*', 'audit_log'] });
    const toc = await listArtifact(artifact(m));
    expect(toc).not.toMatch(/TABLE (DATA )?shop delivery_slots/);
    expect(toc).not.toMatch(/TABLE (DATA )?public audit_log/);
    expect(toc).toMatch(/SEQUENCE public audit_log_id_seq/);

    const whole = await countsOf(source.url);
    expect(m.verification.objects.tables).toBe(whole.objects.tables - 2);
    expect(m.verification.objects.constraints.x).toBe(whole.objects.constraints.x - 1);
    // delivery_slots' identity sequence goes with it; audit_log's serial sequence stays.
    expect(m.verification.objects.sequences).toBe(whole.objects.sequences - 1);

    const outcome = await restoreTest(m);
    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
  }, 120_000);

  it('dumps only the listed schemas (no extensions, as pg_dump --schema) and passes its restore test', async () => {
    const target = { ...defaultTarget('scoped', source.url), schemas: ['shop'] };
    const m = await runBackup(backupOptions(source.url, store.storage, { target }));
    expect(new Set(m.verification.tables.map((t) => t.schema))).toEqual(new Set(['shop']));
    expect(m.verification.objects.schemas).toBe(1);
    expect(m.verification.objects.extensions).toBe(0);
    const outcome = await restoreTest(m);
    expect(outcome.problems).toEqual([]);
    expect(outcome.passed).toBe(true);
  }, 120_000);

  it('writes no scope into the manifest of a whole-database backup', async () => {
    const m = await runBackup(backupOptions(source.url, store.storage, { target: defaultTarget('scoped', source.url) }));
    expect(m.scope).toBeUndefined();
    expect(m.verification.tables.map((t) => t.table)).toContain('audit_log');
  }, 120_000);
});
