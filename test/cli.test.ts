import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../src/crypto/age.ts';
import { startEphemeralPostgres, type EphemeralPostgres } from '../src/dev/ephemeral.ts';
import { createTestDatabase } from './support/databases.ts';
import { loadSampleSchema } from './e2e/harness.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

describe('the CLI, for when Slack is down', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  // Production targets (every DATABASE_URL target) refuse unencrypted backups: the CLI gets a key pair.
  let enc: Record<string, string>;
  // The restore test's scratch database goes to a server of its own (see test/postgres/encrypted-backup.test.ts).
  let scratch: EphemeralPostgres;

  beforeAll(async () => {
    scratch = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-'));
    const keys = await generateKeyPair();
    await writeFile(join(dir, 'backup.key'), keys.identityFileText, { mode: 0o600 });
    enc = { BACKUP_ENCRYPTION_RECIPIENT: keys.recipient, BACKUP_ENCRYPTION_IDENTITY_FILE: join(dir, 'backup.key') };
    db = await createTestDatabase(inject('pgUrl'), 'cli');
    await loadSampleSchema(db.url);
  });

  afterAll(async () => {
    await db?.drop();
    await scratch?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('backs up in the foreground, prints the summary and exits 0; list shows it', async () => {
    const env = { DATABASE_URL: db.url, TARGET_NAME: 'shop', BACKUP_DIR: dir, ...enc };
    const run = await cli(['backup'], env);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/^Backup shop-\d{8}T\d{6}Z OK/);
    expect(run.stdout).toMatch(/tables\s+9, 11,446 rows/);
    expect(run.stdout).toMatch(/encryption\s+age, 1 recipient/);
    expect(run.stderr).toMatch(/dumping|counting/);
    const id = /^Backup (\S+) OK/.exec(run.stdout)?.[1] ?? '';
    const list = await cli(['list'], { BACKUP_DIR: dir });
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toContain(id);
    // The restore test reads the identity file the environment names, and passes.
    const test = await cli(['restore-test', id], { ...env, RESTORE_TEST_DATABASE_URL: scratch.url });
    expect(test.stderr).not.toMatch(/could not run/);
    expect(test.stdout).toMatch(new RegExp(`Restore test of ${id} PASSED`));
    expect(test.exitCode).toBe(0);
  });

  it('refuses an unencrypted production backup, unless the config file says `encryption: none`', async () => {
    const env = { DATABASE_URL: db.url, TARGET_NAME: 'plain', BACKUP_DIR: dir };
    const refused = await cli(['backup'], env);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/Backup FAILED: Refusing an unencrypted backup of plain \(production\): set BACKUP_ENCRYPTION_RECIPIENT/);
    expect(await readdir(dir)).not.toContain('plain');
    await writeFile(join(dir, 'none.yml'), 'encryption: none\n');
    const optedOut = await cli(['backup'], { ...env, BOT_CONFIG: join(dir, 'none.yml') });
    expect(optedOut.exitCode).toBe(0);
    expect(optedOut.stdout).toMatch(/encryption\s+none/);
    const [backup] = await readdir(join(dir, 'plain'));
    expect((await readdir(join(dir, 'plain', backup ?? ''))).sort()).toEqual(['database.pgdump.zst', 'globals.sql.zst', 'manifest.json']);
  });

  it('exits 1 with one sentence when the backup fails, and keeps nothing', async () => {
    const run = await cli(['backup'], { DATABASE_URL: db.url.replace(/\/[^/]+$/, '/no_such_db'), TARGET_NAME: 'gone', BACKUP_DIR: dir, ...enc });
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
    const run = await execa('node', ['bin/pg-backup-bot.js', 'demo', '/backup now', '/backup list', '/backup health'], { reject: false, stdin: 'ignore' });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/Backup of shop succeeded/);
    expect(run.stdout).toMatch(/Backups \(newest first, 1 in all\)/);
    // `/backup health` sees the run the worker recorded, as the real bot's does.
    expect(run.stdout).toMatch(/last backup failed: last run succeeded at /);
    expect(run.stdout).toMatch(/Cleaning up/);
    const dirMatch = /backups in (\S+)\./.exec(run.stdout);
    await expect(execa('test', ['-e', dirMatch?.[1] ?? '/nonexistent'])).rejects.toThrow();
  }, 120_000);

  it('never reads a pg-backup-bot.yml in the current directory: its targets are real databases', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'pgbb-demo-cwd-'));
    try {
      await writeFile(join(cwd, 'pg-backup-bot.yml'), 'timezone: Asia/Tokyo\ntargets:\n  - name: prod-orders\n    url: postgres://backup@127.0.0.1:1/orders\n    environment: production\n');
      const run = await execa('node', [join(process.cwd(), 'bin/pg-backup-bot.js'), 'demo', '/backup status'], { cwd, reject: false, stdin: 'ignore' });
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toMatch(/Schedules \(times in UTC\):\n\s+shop\n/);
      expect(run.stdout).not.toContain('prod-orders');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  }, 120_000);
});
