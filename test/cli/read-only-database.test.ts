import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliBackupInto } from '../support/app-backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';

/**
 * A database whose own settings make its sessions read-only (`ALTER DATABASE … SET default_transaction_read_only =
 * on`: an archive, a reporting copy). QA: it could be backed up but never restore-tested or replaced: the bot made
 * its scratch and staging databases over a connection to that database, whose CREATE DATABASE the setting refused.
 */
describe('a database set read-only by its own settings', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let id: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-readonly-'));
    db = await createTestDatabase(inject('pgUrl'), 'archive');
    await runSql(
      db.url,
      `CREATE TABLE "Ledger Entry" (id int PRIMARY KEY, amount numeric); INSERT INTO "Ledger Entry" SELECT g, g * 3 FROM generate_series(1, 200) g;
       ALTER DATABASE ${db.name} SET default_transaction_read_only = on`,
    );
    ({ env, id } = await cliBackupInto(dir, db.url));
  }, 120_000);

  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('restore-tests it, replaces it and brings a table back into it, the copy read-only as its source was', async () => {
    const test = await cli(['restore-test', id], env);
    expect(test.stderr).not.toMatch(/read-only transaction/);
    expect(test.exitCode, `${test.stdout}\n${test.stderr}`).toBe(0);
    expect(test.stdout).toMatch(/PASS/);
    const replaced = await cli(['restore', id, `--into=${db.name}`, '--yes'], env);
    expect(replaced.exitCode, `${replaced.stdout}\n${replaced.stderr}`).toBe(0);
    // When the live name changed hands, to the second (QA: the verdict gave the restore's time alone).
    expect(replaced.stdout).toMatch(
      new RegExp(
        `^Restored the whole database into ${db.name} in [^;]+; swapped in as ${db.name} at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC \\(${db.name} refused connections for [^,]+ before it, its sessions ended: what they wrote until then is in the kept copy\\):$`,
        'm',
      ),
    );
    // The name holds the backup, and its sessions are read-only by default, as the source's were.
    const state = await withClient(db.url, async (c) => ({
      rows: (await c.query<{ n: string }>('SELECT count(*) AS n FROM "Ledger Entry"')).rows[0]?.n,
      readOnly: (await c.query<{ default_transaction_read_only: string }>('SHOW default_transaction_read_only')).rows[0]?.default_transaction_read_only,
    }));
    expect(state).toEqual({ rows: '200', readOnly: 'on' });
    // One table brought back into it, by an admin who confirmed: the database's read-only default does not refuse it.
    await withClient(db.url, (c) => c.query('BEGIN READ WRITE; DELETE FROM "Ledger Entry" WHERE id > 100; COMMIT'));
    const table = await cli(['restore', id, '--table="Ledger Entry"', `--into=${db.name}`, '--yes'], env);
    expect(table.exitCode, `${table.stdout}\n${table.stderr}`).toBe(0);
    // Named as SQL reads it: public."Ledger Entry", not public.Ledger Entry (QA: `public.User` said for "User").
    expect(table.stdout).toContain('  public."Ledger Entry"  200 rows');
    expect(await withClient(db.url, async (c) => (await c.query<{ n: string }>('SELECT count(*) AS n FROM "Ledger Entry"')).rows[0]?.n)).toBe('200');
    const kept = /kept as (\S+?_replaced_\S+?)[ ,;:.]/.exec(replaced.stdout + replaced.stderr)?.[1];
    expect(kept).toBeDefined();
    expect((await cli(['restore', 'drop', kept as string, '--yes'], env)).exitCode).toBe(0);
  }, 180_000);
});
