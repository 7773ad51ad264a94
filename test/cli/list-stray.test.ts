import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli, cliBackupInto } from '../support/app-backups.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';

/**
 * A backup whose manifest.json was lost (deleted by hand, or a run killed before writing it) read as "No finished
 * backups yet" in `list`, its files named nowhere, until retention deleted them a day later (QA). An hour unwritten,
 * the listing names such a directory, where it is and when retention deletes it.
 */
describe('list: a backup directory without a manifest', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let id: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-stray-'));
    db = await createTestDatabase(inject('pgUrl'), 'stray');
    await runSql(db.url, `CREATE TABLE "Order Line" (id int PRIMARY KEY); INSERT INTO "Order Line" SELECT generate_series(1, 50)`);
    const backedUp = await cliBackupInto(dir, db.url);
    env = { ...backedUp.env, TZ: 'UTC' };
    id = backedUp.id;
  }, 60_000);

  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is named with where it is and when retention deletes it, an hour after its last write; the listing exits 1', async () => {
    const backupDir = join(dir, 'shop', id);
    await rm(join(backupDir, 'manifest.json'));

    // Just written: a backup may still be reading its files back; not named yet.
    const fresh = await cli(['list', 'shop'], env);
    expect(fresh.stdout).toMatch(/^No finished backups of shop yet\./);
    expect(fresh.stdout).not.toContain(id);

    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    for (const f of await readdir(backupDir)) await utimes(join(backupDir, f), twoHoursAgo, twoHoursAgo);
    await utimes(backupDir, twoHoursAgo, twoHoursAgo);
    const deleteAt = new Date(twoHoursAgo.getTime() + 24 * 3600_000).toISOString().slice(0, 16).replace('T', ' ');
    const listed = await cli(['list', 'shop'], env);
    expect(listed.stdout).toContain(
      `A backup directory has no manifest, so it is not a finished backup and not listed: ${id} (last written 2 h 0 min ago, in ${backupDir}; deleted `,
    );
    expect(listed.stdout).toContain(`deleted ${new Date(twoHoursAgo.getTime() + 24 * 3600_000).toUTCString().slice(0, 3)} ${deleteAt} UTC`);
    expect(listed.stdout).toMatch(/retention deletes it 24 h after the last write; copy out what you want to keep before then/);
    expect(listed.exitCode).toBe(1);
  }, 120_000);
});
