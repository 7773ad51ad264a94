import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliBackupInto } from '../support/app-backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';

/**
 * One flipped byte in a backup's roles file (globals.sql.zst.age) used to refuse every restore of it, though its
 * database archive is whole (QA). A restore that does not apply the backup's roles (a new database, a replacement,
 * tables) never reads that file: it now goes on and says the file is damaged; a restore test, which proves the whole
 * backup, still fails, and so does a restore that applies the roles (--with-globals).
 */
describe('a backup whose roles file alone is damaged', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let id: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-roles-'));
    db = await createTestDatabase(inject('pgUrl'), 'roles');
    await runSql(
      db.url,
      `CREATE TABLE "Invoice" (id int PRIMARY KEY, "Total Due" numeric); INSERT INTO "Invoice" SELECT g, g * 1.5 FROM generate_series(1, 300) g`,
    );
    ({ env, id } = await cliBackupInto(dir, db.url));
    const file = join(dir, 'shop', id, 'globals.sql.zst.age');
    const bytes = await readFile(file);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 0xff;
    await writeFile(file, bytes);
  }, 120_000);

  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a restore into a new database goes on and says the roles file is damaged; the restore test fails; --with-globals is refused', async () => {
    expect(id).not.toBe('');
    const restored = await cli(['restore', id], env);
    expect(restored.exitCode, restored.stderr).toBe(0);
    const database = /Restored the whole database into (\S+) in /.exec(restored.stdout)?.[1] ?? '';
    expect(restored.stdout).toMatch(
      /note {2}The backup's roles file is damaged \(artifact corrupted: globals\.sql\.zst\.age \(sha256 .*\)\): this restore does not read it/,
    );
    const copy = new URL(db.url);
    copy.pathname = `/${database}`;
    try {
      const total = await withClient(
        copy.toString(),
        async (c) => (await c.query<{ s: string }>('SELECT sum("Total Due")::text AS s FROM "Invoice"')).rows[0]?.s,
      );
      expect(total).toBe('67725.0');
    } finally {
      await runSql(db.url, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    }

    // The restore read the roles file back twice more: marked damaged, saying which restores still take it.
    expect(restored.stderr).toMatch(
      new RegExp(
        `Backup ${id} is now marked damaged .*restore tests and restores --with-globals refuse it \\(only its roles file is damaged: other restores still take it\\)`,
      ),
    );
    // Listed as what it is: not "cannot be restored" (QA), in `list` and in `check`'s damaged line.
    const list = await cli(['list', 'shop'], env);
    expect(list.stdout).toContain(
      `1 backup is not listed, its roles file damaged: its database archive is intact: restores without --with-globals take it (restore tests, which prove the whole backup, do not): ${id} (pg-backup-bot restore found artifact corrupted: globals.sql.zst.age`,
    );
    expect(list.stdout).not.toMatch(/cannot restore|No restorable/);
    expect(list.stdout).toMatch(/^No whole backups of shop\./);
    const check = await cli(['check'], env);
    expect(check.stdout).toMatch(
      /CRITICAL shop stale: no whole backup of shop: 1 stored is damaged \(only in the roles file: restorable without --with-globals\)/,
    );
    expect(check.stdout).toMatch(
      /CRITICAL shop damaged: .*globals\.sql\.zst\.age.*; its database archive is intact: restores without --with-globals take it\)/,
    );
    expect(check.stdout).not.toMatch(/cannot be restored|no restorable/);

    // A restore test proves the whole backup: the damaged roles file stops it.
    const test = await cli(['restore-test', id], env);
    expect(test.exitCode).not.toBe(0);
    expect(test.stdout + test.stderr).toMatch(/artifact corrupted: globals\.sql\.zst\.age/);
    expect(test.stdout).not.toMatch(/PASSED/);

    // Marked, restores that do not need the roles still take it; one that applies them does not.
    const again = await cli(['restore', id], env);
    expect(again.exitCode, again.stderr).toBe(0);
    const second = /Restored the whole database into (\S+) in /.exec(again.stdout)?.[1] ?? '';
    await runSql(db.url, `DROP DATABASE IF EXISTS "${second}" WITH (FORCE)`);
    const withRoles = await cli(['restore', id, '--to-url-env=NEW_SERVER_URL', '--with-globals'], { ...env, NEW_SERVER_URL: db.url });
    expect(withRoles.exitCode).toBe(1);
    expect(withRoles.stderr).toMatch(
      new RegExp(
        `Backup ${id} cannot be restored: pg-backup-bot restore found artifact corrupted: globals\\.sql\\.zst\\.age.*Its database archive is intact: a restore that does not apply the backup's roles \\(without --with-globals\\) goes on`,
      ),
    );
  }, 180_000);

  it('the checksum scrub that finds it says the database archive is intact, not only "take a new backup" (QA)', async () => {
    const other = await mkdtemp(join(tmpdir(), 'pgbb-roles-scrub-'));
    try {
      const taken = await cliBackupInto(other, db.url);
      const file = join(other, 'shop', taken.id, 'globals.sql.zst.age');
      const bytes = await readFile(file);
      bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 0xff;
      await writeFile(file, bytes);
      const scrub = await cli(['scrub', '--all'], taken.env);
      expect(scrub.exitCode).toBe(1);
      expect(scrub.stdout).toMatch(
        new RegExp(
          `^DAMAGED ${taken.id}: the checksum scrub found artifact corrupted: globals\\.sql\\.zst\\.age .*\\. Marked damaged: its roles file alone, so its database archive is intact and restores without --with-globals still take it`,
          'm',
        ),
      );
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  }, 180_000);
});
