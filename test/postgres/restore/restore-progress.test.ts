import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runRestoreTest } from '../../../src/postgres/restore/index.ts';
import { describeProgress, readProgress } from '../../../src/postgres/restore/restore-progress.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import type { AppDatabase } from '../../support/app-database.ts';
import { appBackedUp } from '../../support/app-backups.ts';
import { silentLog, type tempStorage, withClient } from '../../support/postgres-helpers.ts';

describe('restore progress against the manifest’s totals', () => {
  let app: AppDatabase;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  let tempDir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ app, store, manifest, tempDir, cleanup } = await appBackedUp(inject('pgUrl'), 'progress'));
  });
  afterAll(async () => cleanup?.());

  it('counts a database with every row in as done, and one with a single table loaded as one of them', async () => {
    const whole = await withClient(app.url, (c) => readProgress(c, manifest));
    const rows = manifest.verification.tables.reduce((n, t) => n + t.rows, 0);
    expect(whole).toMatchObject({ tables: manifest.verification.tables.length, tablesDone: manifest.verification.tables.length, rows, rowsDone: rows });
    expect(whole.sourceBytes).toBe(manifest.database.sizeBytes);

    const partial = await withClient(inject('pgUrl'), async (admin) => {
      const name = `${app.name}_partial`;
      await admin.query(`CREATE DATABASE ${name}`);
      try {
        const u = new URL(inject('pgUrl'));
        u.pathname = `/${name}`;
        const c = new pg.Client({ connectionString: u.toString() });
        await c.connect();
        try {
          await c.query('CREATE TABLE public."Audit Log" (id int); INSERT INTO public."Audit Log" SELECT generate_series(1, 400)');
          await c.query('SELECT pg_stat_force_next_flush()');
        } finally {
          await c.end();
        }
        return await withClient(u.toString(), (c2) => readProgress(c2, manifest));
      } finally {
        await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
      }
    });
    expect(partial).toMatchObject({ tablesDone: 1, rowsDone: 400 });
    expect(describeProgress(partial)).toMatch(new RegExp(`^1 of ${manifest.verification.tables.length} tables, 400 of [\\d,]+ rows, .+ of .+$`));
  });

  it('reports it while pg_restore runs, as the restore test’s progress', async () => {
    const details: string[] = [];
    const outcome = await runRestoreTest({
      manifest,
      storage: store.storage,
      serverUrl: inject('pgUrl'),
      scratchKey: `job:progress-${process.pid}`,
      tempDir,
      progressEveryMs: 20,
      onProgress: (p) => {
        if (p.phase === 'restoring' && p.detail) details.push(p.detail);
      },
      log: silentLog,
    });
    expect(outcome.passed).toBe(true);
    expect(details.length).toBeGreaterThan(0);
    for (const d of details) expect(d).toMatch(new RegExp(`^\\d+ of ${manifest.verification.tables.length} tables, [\\d,]+ of [\\d,]+ rows, .+ of .+$`));
  });
});
