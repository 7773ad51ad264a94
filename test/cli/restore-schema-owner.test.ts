import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliBackupInto } from '../support/app-backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';

/**
 * `ALTER SCHEMA public OWNER TO app_owner`, advised since PostgreSQL 15: rendered with --no-owner, the archive holds
 * an empty `SCHEMA public` entry (pg_dump does not create the schema initdb creates), and pg_dump of the copy, whose
 * public schema is the database owner's, writes none. QA: every restore test failed and every restore into a new
 * database was refused ("SCHEMA public: missing from the restored copy").
 */
describe('a database whose public schema belongs to an application role', () => {
  const owner = `app_owner_${process.pid}`;
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let id: string;
  const leftovers: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-public-'));
    await runSql(inject('pgUrl'), `CREATE ROLE ${owner}`);
    db = await createTestDatabase(inject('pgUrl'), 'shop');
    await runSql(
      db.url,
      `ALTER SCHEMA public OWNER TO ${owner}; CREATE TABLE "Invoice" (id int PRIMARY KEY, total numeric); INSERT INTO "Invoice" SELECT g, g * 2 FROM generate_series(1, 50) g`,
    );
    ({ env, id } = await cliBackupInto(dir, db.url));
  }, 120_000);

  afterAll(async () => {
    for (const name of leftovers) await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await db?.drop();
    await runSql(inject('pgUrl'), `DROP ROLE IF EXISTS ${owner}`);
    await rm(dir, { recursive: true, force: true });
  });

  const publicOwner = (url: string) =>
    withClient(url, async (c) => (await c.query<{ o: string }>(`SELECT pg_get_userbyid(nspowner) AS o FROM pg_namespace WHERE nspname = 'public'`)).rows[0]?.o);

  it('passes its restore test and restores into a new database; a replacement keeps the schema’s owner', async () => {
    const test = await cli(['restore-test', id], env);
    expect(test.stdout + test.stderr).not.toMatch(/SCHEMA public/);
    expect(test.exitCode, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toMatch(/PASSED/);

    const restored = await cli(['restore', id], env);
    expect(restored.stderr).not.toMatch(/SCHEMA public/);
    expect(restored.exitCode, restored.stderr).toBe(0);
    const database = /Restored the whole database into (\S+) in /.exec(restored.stdout)?.[1] ?? '';
    leftovers.push(database);
    const copy = new URL(db.url);
    copy.pathname = `/${database}`;
    // Restored without owners: the bot's role owns what it restored, the schema included.
    expect(await publicOwner(copy.toString())).not.toBe(owner);

    // Owners kept: the schema's owner is compared, and restored.
    const replaced = await cli(['restore', id, `--into=${db.name}`, '--yes'], env);
    expect(replaced.exitCode, replaced.stderr).toBe(0);
    const kept = /kept as (\S+?_replaced_\w+)/.exec(replaced.stdout)?.[1] ?? '';
    if (kept) leftovers.push(kept);
    expect(await publicOwner(db.url)).toBe(owner);
  }, 180_000);
});
