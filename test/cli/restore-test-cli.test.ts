import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseFetchArgs } from '../../src/cli/fetch-cli.ts';
import type { Manifest } from '../../src/storage/index.ts';
import { tempRoot } from '../storage/fixtures.ts';
import { store } from '../storage/retention-fixtures.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

/** `restore-test <arg>`: what is neither a backup id nor a target is refused, never taken for "the latest backup". */
describe('pg-backup-bot restore-test with a mistyped argument', () => {
  let t: Awaited<ReturnType<typeof tempRoot>>;
  let older: Manifest;
  beforeEach(async () => {
    t = await tempRoot();
    const now = new Date();
    older = await store(t.storage, 'shop', now, 2, 30);
    await store(t.storage, 'shop', now, 1, 30);
  });
  afterEach(() => t.cleanup());

  it('refuses an id with its Z left off, another case, a bare timestamp or shell text, and tests nothing', async () => {
    // The server is not there: a test that started anyway would fail differently, and later.
    const env = { BACKUP_DIR: t.root, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop' };
    for (const arg of [older.backupId.slice(0, -1), older.backupId.toUpperCase(), older.backupId.slice(5), 'shop-2026;rm -rf']) {
      const run = await cli(['restore-test', arg], env);
      // The Z left off is the one typo that names an id for sure: said, and still not run on a guess.
      const meant = arg === older.backupId.slice(0, -1) ? ` Did you mean \`${older.backupId}\`?` : '';
      expect(run.stderr).toBe(
        `Restore test could not run: "${arg}" is neither a backup id nor a target (shop); \`pg-backup-bot list\` shows the ids.${meant} Nothing was tested.`,
      );
      expect(run.stdout).toBe('');
      expect(run.exitCode).toBe(1);
    }
  });

  it('takes an id in the backticks of a copied message, as `restore` does; so does `fetch` (QA)', async () => {
    const env = { BACKUP_DIR: t.root, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop' };
    const run = await cli(['restore-test', `\`${older.backupId}\``], env);
    // Taken as the id: the test starts on it, and fails on the server that is not there, not on the word.
    expect(run.stderr).toContain(`Restore test of ${older.backupId} …`);
    expect(run.stderr).not.toContain('neither a backup id nor a target');
    expect(parseFetchArgs([`\`${older.backupId}\``])).toEqual({ backupId: older.backupId, globals: false, output: null });
  });

  it('with a BACKUP_DIR that does not exist, says so rather than "no backup yet"', async () => {
    const env = { BACKUP_DIR: join(t.root, 'not-mounted'), DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop' };
    const run = await cli(['restore-test'], env);
    expect(run.stderr).toBe(
      `Restore test could not run: BACKUP_DIR ${join(t.root, 'not-mounted')} does not exist: no backup was ever written there. If the backups are elsewhere, set BACKUP_DIR to that directory.`,
    );
    expect(run.exitCode).toBe(1);
  });
});

/** Corruption a restore or restore test finds (a sha256 not the manifest's) is marked, as the bot's workers mark it. */
describe('a corrupted backup found by the CLI', () => {
  let t: Awaited<ReturnType<typeof tempRoot>>;
  let good: Manifest;
  let rotted: Manifest;
  beforeEach(async () => {
    t = await tempRoot();
    const now = new Date();
    rotted = await store(t.storage, 'shop', now, 2, 30);
    good = await store(t.storage, 'shop', now, 1, 30);
    // One bit flipped, the size unchanged: only reading it back tells.
    const file = join(t.root, 'shop', rotted.backupId, 'database.pgdump.zst');
    const bytes = await readFile(file);
    bytes[3] = (bytes[3] ?? 0) ^ 0x10;
    await writeFile(file, bytes);
  });
  afterEach(() => t.cleanup());
  // The checksums come first: nothing reaches the (absent) server.
  const env = () => ({ BACKUP_DIR: t.root, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop' });
  const marked = (by: string) =>
    new RegExp(
      `^Backup ${rotted.backupId} is now marked damaged \\(${by} found artifact corrupted: database\\.pgdump\\.zst \\(sha256 [0-9a-f]{12}… expected, [0-9a-f]{12}… found\\); read back twice more, the same\\): list leaves it out, restores and restore tests refuse it`,
      'm',
    );

  it('restore-test fails it and marks it damaged; list then leaves it out, and a second test is refused naming the good one', async () => {
    const run = await cli(['restore-test', rotted.backupId], env());
    expect(run.exitCode).toBe(1);
    expect(run.stdout).toMatch(/^Restore test of \S+ FAILED\n/);
    expect(run.stderr).toMatch(marked('pg-backup-bot restore-test'));
    expect(run.stderr).toMatch(new RegExp(`health check pages it\\. The newest good backup of shop is ${good.backupId}\\.$`, 'm'));
    const list = await cli(['list', 'shop'], env());
    expect(list.stdout).toContain(good.backupId);
    expect(list.stdout).toMatch(new RegExp(`not listed, damaged .*${rotted.backupId} \\(pg-backup-bot restore-test found artifact corrupted`));
    const again = await cli(['restore-test', rotted.backupId], env());
    expect(again.stderr).toContain(`cannot be restored: pg-backup-bot restore-test found artifact corrupted`);
    expect(again.stderr).toContain(`The newest good backup of shop is \`${good.backupId}\``);
    expect(again.exitCode).toBe(1);
  });

  it('restore fails it before touching the server and marks it damaged', async () => {
    const run = await cli(['restore', rotted.backupId], env());
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/^Restore FAILED: artifact corrupted: database\.pgdump\.zst/m);
    expect(run.stderr).toMatch(marked('pg-backup-bot restore'));
    expect((await cli(['restore', rotted.backupId], env())).stderr).toContain('cannot be restored: pg-backup-bot restore found artifact corrupted');
  });

  it('an intact backup is not marked', async () => {
    // Passing its checksums, it goes on to the server, which is not there: a failure that is no damage.
    const run = await cli(['restore', good.backupId], env());
    expect(run.exitCode).toBe(1);
    expect(run.stderr).not.toMatch(/marked damaged/);
    expect((await cli(['list', 'shop'], env())).stdout).toContain(good.backupId);
  });
});
