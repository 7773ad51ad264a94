import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from './support/databases.ts';
import { loadSampleSchema } from './e2e/harness.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

describe('the CLI, for when Slack is down', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-'));
    db = await createTestDatabase(inject('pgUrl'), 'cli');
    await loadSampleSchema(db.url);
  });

  afterAll(async () => {
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('backs up in the foreground, prints the summary and exits 0; list shows it', async () => {
    const env = { DATABASE_URL: db.url, TARGET_NAME: 'shop', BACKUP_DIR: dir };
    const run = await cli(['backup'], env);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^Backup shop-\d{8}T\d{6}Z OK/);
    expect(run.stdout).toMatch(/tables\s+9, 11,446 rows/);
    expect(run.stderr).toMatch(/dumping|counting/);
    const id = /^Backup (\S+) OK/.exec(run.stdout)?.[1] ?? '';
    const list = await cli(['list'], { BACKUP_DIR: dir });
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toContain(id);
  });

  it('exits 1 with one sentence when the backup fails, and keeps nothing', async () => {
    const run = await cli(['backup'], { DATABASE_URL: db.url.replace(/\/[^/]+$/, '/no_such_db'), TARGET_NAME: 'gone', BACKUP_DIR: dir });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/Backup FAILED: The database "no_such_db" does not exist/);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const list = await cli(['list', 'gone'], { BACKUP_DIR: dir });
    expect(list.stdout).toMatch(/No finished backups of gone/);
  });

  it('refuses to start without DATABASE_URL, naming it', async () => {
    const run = await cli(['backup'], { BACKUP_DIR: dir });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/DATABASE_URL: required/);
  });
});

describe('npm run demo', () => {
  it('runs a backup on its own throwaway servers, prints the channel, and cleans up', async () => {
    const run = await execa('node', ['bin/pg-backup-bot.js', 'demo', '/backup now', '/backup list'], { reject: false, stdin: 'ignore' });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/Backup of shop succeeded/);
    expect(run.stdout).toMatch(/Backups \(newest first, 1 in all\)/);
    expect(run.stdout).toMatch(/Cleaning up/);
    const dirMatch = /backups in (\S+)\./.exec(run.stdout);
    await expect(execa('test', ['-e', dirMatch?.[1] ?? '/nonexistent'])).rejects.toThrow();
  }, 120_000);
});
