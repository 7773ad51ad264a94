import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { loadSampleSchema } from '../e2e/harness.ts';

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
    expect(run.stdout).toMatch(/^Backup shop-\d{8}T\d{6}Z(-\d+)? OK/);
    expect(run.stdout).toMatch(/tables\s+9, 11,446 rows/);
    expect(run.stdout).toMatch(/encryption\s+age, 1 recipient/);
    expect(run.stderr).toMatch(/dumping|counting/);
    // A first backup: its progress is said against the tables' size on disk, from the dump's first report on.
    expect(run.stderr).toMatch(/ {2}dumping · 0 B of ~\d[\d.]* (B|KB|MB|GB) of tables on disk read \(0 %\) · /);
    const id = /^Backup (\S+) OK/.exec(run.stdout)?.[1] ?? '';
    const list = await cli(['list'], { BACKUP_DIR: dir });
    expect(list.exitCode).toBe(0);
    expect(list.stdout).toContain(id);
    // The restore test reads the identity file the environment names, and passes.
    const test = await cli(['restore-test', id], { ...env, RESTORE_TEST_DATABASE_URL: scratch.url });
    expect(test.stderr).not.toMatch(/could not run/);
    expect(test.stdout).toMatch(new RegExp(`Restore test of ${id} PASSED`));
    expect(test.exitCode).toBe(0);
    // With no selection, `restore` brings the whole database back into a new one beside it, verified, and keeps it.
    const full = await cli(['restore', id], env);
    expect(full.stderr).toMatch(
      /Restoring the whole database of .* into a new database pgbb_restore_\S+ on .* … Disk: the copy needs about [\d.]+ [KMG]i?B free on that server/,
    );
    expect(full.exitCode, full.stderr).toBe(0);
    const restored = /Restored the whole database into (\S+) in /.exec(full.stdout)?.[1] ?? '';
    expect(full.stdout).toMatch(/11,446 rows; checked: .*9 tables: content identical; \d+ definitions identical/);
    const copy = new URL(db.url);
    copy.pathname = `/${restored}`;
    const c = new pg.Client({ connectionString: copy.toString() });
    await c.connect();
    try {
      expect((await c.query<{ n: string }>('select count(*) as n from shop.customers')).rows[0]?.n).toBe('500');
    } finally {
      await c.end();
      await runSql(db.url, `DROP DATABASE "${restored}" WITH (FORCE)`);
    }
  });

  it('a reader that goes away (`restore … 2>&1 | head -3`) stops the restore as Ctrl-C does: no database and no decrypted archive left', async () => {
    const env = { DATABASE_URL: db.url, TARGET_NAME: 'shop', BACKUP_DIR: dir, ...enc };
    const id = /^Backup (\S+) OK/.exec((await cli(['backup'], env)).stdout)?.[1] ?? '';
    expect(id).not.toBe('');
    const temp = await mkdtemp(join(tmpdir(), 'pgbb-cli-tmp-'));
    try {
      const child = execa('node', ['bin/pg-backup-bot.js', 'restore', id], {
        env: { PATH: process.env.PATH ?? '', TMPDIR: temp, ...env },
        extendEnv: false,
        reject: false,
        stdout: 'ignore',
      });
      // Read until the restore has begun (the database exists), then the pipe closed: every later write to stderr
      // fails with EPIPE, as after `| head -3`.
      let first = '';
      await new Promise<void>((resolve) => {
        child.stderr?.on('data', (c: Buffer) => {
          first += c.toString();
          if (/ {2}restoring · /.test(first)) {
            child.stderr?.destroy();
            resolve();
          }
        });
      });
      expect(first).toMatch(/^Restoring the whole database of /);
      const database = /into a new database (pgbb_restore_\S+) on /.exec(first)?.[1] ?? '';
      const run = await child;
      // Stopped and cleaned up, not killed by the unhandled EPIPE (exit 7 with a stack trace) nor left running.
      expect(run.exitCode).toBe(1);
      const names = await withClient(db.url, async (c) => (await c.query<{ datname: string }>('SELECT datname FROM pg_database')).rows.map((r) => r.datname));
      expect(names).not.toContain(database);
      expect(await readdir(temp)).toEqual([]);
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  });

  it('Ctrl-C, or a closed terminal (SIGHUP), stops a running backup, keeps nothing and leaves no pg_dump behind', async () => {
    for (const signal of ['SIGINT', 'SIGHUP'] as const) {
      const target = `interrupted-${signal.toLowerCase()}`;
      // A lock that makes the backup wait (count(*) and pg_dump both need the table) until it is interrupted.
      const holder = new pg.Client({ connectionString: db.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE shop.customers IN ACCESS EXCLUSIVE MODE');
        const child = execa('node', ['bin/pg-backup-bot.js', 'backup'], {
          env: { PATH: process.env.PATH ?? '', DATABASE_URL: db.url, TARGET_NAME: target, BACKUP_DIR: dir, ...enc },
          extendEnv: false,
          reject: false,
        });
        let err = '';
        child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
        const end = Date.now() + 30_000;
        while (!/counting|dumping/.test(err) && child.exitCode === null && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        await new Promise((r) => setTimeout(r, 300));
        child.kill(signal);
        const run = await child;
        // After a hangup the CLI cleans up, then ends by SIGHUP as it would have without a handler.
        if (signal === 'SIGHUP') expect(run.signal).toBe('SIGHUP');
        else expect(run.exitCode).toBe(1);
        expect(run.stdout + err).toMatch(/canceled/i);
        expect(await readdir(join(dir, target)).catch(() => [])).toEqual([]);
        const left = await execa('pgrep', ['-f', `pg_dump.*${db.name}`], { reject: false });
        expect(left.stdout).toBe('');
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        await holder.end();
      }
    }
  });

  it('refuses an unencrypted production backup, unless the config file says `encryption: none`', async () => {
    const env = { DATABASE_URL: db.url, TARGET_NAME: 'plain', BACKUP_DIR: dir };
    const refused = await cli(['backup'], env);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(
      /Backup FAILED: Refusing an unencrypted backup of plain \(production\): run `npx pg-backup-bot init` .*age-keygen -o backup\.key.* set BACKUP_ENCRYPTION_RECIPIENT/,
    );
    // Refused before it says it backs up (QA: "Backing up plain to …" came first).
    expect(refused.stderr).not.toMatch(/Backing up/);
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
    // Not even the target's directory, which this first backup of it created.
    expect(await readdir(dir)).not.toContain('gone');
    const list = await cli(['list', 'gone'], { DATABASE_URL: db.url.replace(/\/[^/]+$/, '/no_such_db'), TARGET_NAME: 'gone', BACKUP_DIR: dir });
    expect(list.stdout).toMatch(/No finished backups of gone/);
    // Where no config names it and nothing of it is stored, `gone` is a typo: said, and not a success.
    const unknown = await cli(['list', 'gone'], { BACKUP_DIR: dir });
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toMatch(/There is no target named "gone"/);
  });

  it('refuses to start without DATABASE_URL, naming it', async () => {
    const run = await cli(['backup'], { BACKUP_DIR: dir });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toMatch(/DATABASE_URL: required/);
  });

  it('a worker with a mistyped age recipient does not start, and says what is wrong with it (QA: the first backup found it)', async () => {
    // A real key with its last character changed: the right shape, a wrong checksum.
    const key = 'age1vnjlceecrz4x0hj6agpan0yfrvnr33uz9lyx0hqfmzjxlye8ev7qa7grrx';
    const run = await cli(['worker'], {
      SLACK_BOT_TOKEN: 'xoxb-test',
      BACKUP_DIR: dir,
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/app',
      BACKUP_ENCRYPTION_RECIPIENT: key,
    });
    expect(run.exitCode).not.toBe(0);
    expect(run.stderr).toContain('BACKUP_ENCRYPTION_RECIPIENT: key 1 is not valid: its checksum does not match');
  });
});

describe('npm run demo', () => {
  it('runs a backup on its own throwaway servers, prints the channel, and cleans up', async () => {
    const run = await execa('node', ['bin/pg-backup-bot.js', 'demo', '/backup now', '/backup list', '/backup health'], { reject: false, stdin: 'ignore' });
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/Backup of shop succeeded/);
    expect(run.stdout).toMatch(/Backups \(newest first, 1 in all\)/);
    // `/backup health` sees the run the worker recorded, as the real bot's does.
    // Read the right way round: a passing line names what it watches, not the failure.
    expect(run.stdout).toMatch(/last backup: last run succeeded at /);
    expect(run.stdout).not.toMatch(/last backup failed: last run succeeded/);
    expect(run.stdout).toMatch(/Cleaning up/);
    const dirMatch = /backups in (\S+)\./.exec(run.stdout);
    await expect(execa('test', ['-e', dirMatch?.[1] ?? '/nonexistent'])).rejects.toThrow();
  }, 120_000);

  it('cleans up on SIGTERM, Ctrl-C or a closed terminal (SIGHUP) too: no PostgreSQL, redis-server or files (the age identity among them) are left behind', async () => {
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      // stdin stays open, as at a prompt: the demo waits for commands until the signal.
      const child = execa('node', ['bin/pg-backup-bot.js', 'demo'], { reject: false, stdin: 'pipe' });
      let out = '';
      let err = '';
      child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
      // The prompt's line is the last before it waits: the identity's line comes after "Ready.", maybe in another chunk.
      while (!/Type a slash command/.test(out) && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
      const dir = /backups in (\S+)\./.exec(out)?.[1];
      const port = /on postgres:\/\/[^@]*@?[^:]+:(\d+)\//.exec(out)?.[1];
      const identity = /read the identity (\S+)\./.exec(out)?.[1];
      // Should the demo end before it is ready, what it said.
      expect(dir, `${out}\n${err}`).toBeDefined();
      expect(port).toBeDefined();
      expect(identity).toBeDefined();
      child.kill(signal);
      const run = await child;
      // A hangup ends the demo by SIGHUP once it has cleaned up, as it would have ended without a handler.
      if (signal === 'SIGHUP') expect(run.signal).toBe('SIGHUP');
      else expect(run.exitCode).toBe(130);
      expect(out).toContain(`${signal}: cleaning up`);
      await expect(execa('test', ['-e', dir ?? '/nonexistent'])).rejects.toThrow();
      await expect(execa('test', ['-e', identity ?? '/nonexistent'])).rejects.toThrow();
      // Nothing listens on the demo's PostgreSQL port any more.
      const probe = await execa('pg_isready', ['-h', '127.0.0.1', '-p', port ?? '1'], { reject: false });
      expect(probe.exitCode).not.toBe(0);
    }
  }, 120_000);

  it('never reads a pg-backup-bot.yml in the current directory: its targets are real databases', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'pgbb-demo-cwd-'));
    try {
      await writeFile(
        join(cwd, 'pg-backup-bot.yml'),
        'timezone: Asia/Tokyo\ntargets:\n  - name: prod-orders\n    url: postgres://backup@127.0.0.1:1/orders\n    environment: production\n',
      );
      const run = await execa('node', [join(process.cwd(), 'bin/pg-backup-bot.js'), 'demo', '/backup status'], { cwd, reject: false, stdin: 'ignore' });
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toMatch(/Schedules \(times in UTC\):\n\s+shop\n/);
      expect(run.stdout).not.toContain('prod-orders');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  }, 120_000);
});
