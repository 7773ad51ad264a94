import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
      expect(run.stderr).toBe(
        `Restore test could not run: "${arg}" is neither a backup id nor a target (shop); \`pg-backup-bot list\` shows the ids. Nothing was tested.`,
      );
      expect(run.stdout).toBe('');
      expect(run.exitCode).toBe(1);
    }
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
