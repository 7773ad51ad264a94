import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runRestoreTest } from '../../../src/postgres/restore/index.ts';
import { describeProgress, readProgress } from '../../../src/postgres/restore/restore-progress.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import type { AppDatabase } from '../../support/app-database.ts';
import { appBackedUp } from '../../support/app-backups.ts';
import { silentLog, type tempStorage, withClient } from '../../support/postgres-helpers.ts';
import { findPgTools } from '../../../src/postgres/tools.ts';
import { withPgEnv } from '../../../src/postgres/connection.ts';
import { execa } from 'execa';

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
    expect(partial.archive).toBeNull();
    expect(describeProgress(partial)).toMatch(new RegExp(`^1 of ${manifest.verification.tables.length} tables, 400 of [\\d,]+ rows, database .+ of .+$`));
    const reading = { bytesRead: async () => 3 * 1024 * 1024, total: 8 * 1024 * 1024 };
    const read = await withClient(app.url, (c) => readProgress(c, manifest, reading));
    expect(read.archive).toEqual({ read: 3 * 1024 * 1024, total: 8 * 1024 * 1024 });
    expect(describeProgress(read)).toMatch(/^archive reached 3(\.0)? MB of 8(\.0)? MB, /);
  });

  // pg_restore loads each table with one COPY, counted in pg_stat_user_tables only once it commits: a large
  // table would show 0 rows for its whole load. psql's COPY here is left open after 300 rows, as a COPY of a big
  // table is halfway through.
  it('counts the rows of a COPY still running', async () => {
    const tools = await findPgTools({ serverMajor: 12 });
    const audit = manifest.verification.tables.find((t) => t.table === 'Audit Log');
    expect(audit).toBeDefined();
    await withClient(app.url, (c) => c.query('TRUNCATE public."Audit Log" CASCADE; SELECT pg_stat_reset()'));
    const rows = Array.from({ length: 300 }, (_, i) => `2026-03-01 00:00:00+00\tcopied ${i}\n`).join('');
    // libpq sends COPY data in 8 kB messages, so the server has some of the 300 rows, not all: what it has
    // taken (pg_stat_progress_copy) is what the progress must count, since the COPY is waiting for more.
    const { seen, server, exitCode } = await withPgEnv(app.url, async (env) => {
      const copy = execa(tools.psql, ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'COPY public."Audit Log" ("at", "what") FROM STDIN'], {
        env,
        extendEnv: false,
        stdin: 'pipe',
        reject: false,
      });
      copy.stdin?.write(rows);
      let n = 0;
      let taken = 0;
      try {
        for (let i = 0; i < 100 && (n === 0 || n !== taken); i++) {
          await new Promise((r) => setTimeout(r, 50));
          n = (await withClient(app.url, (c) => readProgress(c, manifest))).rowsDone;
          taken = await withClient(app.url, async (c) =>
            Number((await c.query('SELECT sum(tuples_processed) AS n FROM pg_stat_progress_copy')).rows[0].n ?? 0),
          );
        }
      } finally {
        copy.stdin?.end();
      }
      return { seen: n, server: taken, exitCode: (await copy).exitCode };
    });
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBe(server);
    expect(exitCode).toBe(0);
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
    const archive = '(?:archive reached [\\d.]+ [KMG]?B of [\\d.]+ [KMG]?B, )?';
    for (const d of details)
      expect(d).toMatch(new RegExp(`^${archive}\\d+ of ${manifest.verification.tables.length} tables, [\\d,]+ of [\\d,]+ rows, database .+ of .+$`));
  });
});
