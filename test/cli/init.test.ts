import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createAppDatabase, type AppDatabase } from '../support/app-database.ts';
import { cli } from '../support/app-backups.ts';

const init = (args: string[], input?: string) =>
  execa('node', ['bin/pg-backup-bot.js', 'init', ...args], { env: { PATH: process.env.PATH ?? '' }, extendEnv: false, reject: false, input: input ?? '' });

/** The `NAME=value` lines init prints under "Set these…", as the user would copy them. */
function printedEnv(stdout: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of stdout.matchAll(/^ {2}([A-Z_][A-Z0-9_]*)=(\S+)/gm)) env[m[1] as string] = m[2] as string;
  return env;
}

describe('pg-backup-bot init: the first run', () => {
  let dir: string;
  let app: AppDatabase;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-init-'));
    app = await createAppDatabase(inject('pgUrl'), 'init');
  });
  afterAll(async () => {
    await app?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a config the bot accepts and a private key, prints what to set, and a first backup and restore test then work', async () => {
    const here = join(dir, 'flags');
    const run = await init([`--dir=${here}`, '--target=shop', '--backup-at=01:30', '--timezone=europe/paris']);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(((await stat(join(here, 'pg-backup-bot.key'))).mode & 0o777).toString(8)).toBe('600');
    expect(run.stdout).toMatch(/KEEP A SECOND COPY OF THIS KEY SOMEWHERE SAFE.*\n.*without it, no backup can ever be read/);
    const env = printedEnv(run.stdout);
    const recipient = env.BACKUP_ENCRYPTION_RECIPIENT ?? '';
    expect(await readFile(join(here, 'pg-backup-bot.key'), 'utf8')).toContain(`# public key: ${recipient}`);
    expect(Object.keys(env)).toEqual(
      expect.arrayContaining(['BOT_CONFIG', 'SHOP_DATABASE_URL', 'BACKUP_ENCRYPTION_RECIPIENT', 'BACKUP_ENCRYPTION_IDENTITY_FILE', 'BACKUP_DIR', 'REDIS_URL']),
    );
    expect(run.stdout).toMatch(/SLACK_BOT_TOKEN=xoxb-… with SLACK_SIGNING_SECRET=…/);
    // Each printed variable line is NAME=value alone: pasted into an EnvironmentFile, a trailing comment would be kept.
    for (const line of run.stdout.split('\n').filter((l) => /^ {2}[A-Z_]+=/.test(l))) expect(line).toMatch(/^ {2}[A-Z_][A-Z0-9_]*=\S+$/);

    // The service accepts it (a production target, encrypted), on the schedule asked for, in the zone asked for.
    const config = loadConfig({ ...env, SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 's', SHOP_DATABASE_URL: app.url }, 'all');
    expect(config.timezone).toBe('Europe/Paris');
    expect(config.targets.map((t) => [t.name, t.environment, t.policy.backups.map((b) => `${b.id} ${b.cron}`)])).toEqual([
      ['shop', 'production', ['daily 30 1 * * *', 'frequent 0 */6 * * *']],
    ]);
    expect(config.encryption.recipients).toEqual([recipient]);

    // The next commands it prints, with the environment it prints.
    const cliEnv = { ...env, SHOP_DATABASE_URL: app.url, BACKUP_DIR: join(here, 'backups') };
    const backup = await cli(['backup', 'shop'], cliEnv);
    expect(backup.exitCode, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/^Backup shop-\S+ OK/);
    const test = await cli(['restore-test', 'shop'], cliEnv);
    expect(test.exitCode, `${test.stderr}\n${test.stdout}`).toBe(0);
    expect(test.stdout).toMatch(/ PASSED$/m);
  });

  it('asks when told to (or on a terminal), defaults on an empty answer, and asks again after a wrong one', async () => {
    const here = join(dir, 'asked');
    const run = await init([`--dir=${here}`, '--ask'], 'blog\nstaging\n\n25:00\n07:15\n\n');
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toContain('Name of the database to back up (the target) [main]: ');
    expect(run.stderr).toContain('Environment variable that will hold its connection URL [BLOG_DATABASE_URL]: ');
    expect(run.stderr).toContain('a time of day as HH:MM, 24-hour');
    const text = await readFile(join(here, 'pg-backup-bot.yml'), 'utf8');
    expect(text).toContain('  - name: blog\n    urlEnv: BLOG_DATABASE_URL\n    environment: staging\n');
    expect(text).toContain("weekly: { cron: '15 7 * * 0' }");
    expect(run.stdout).toContain('backed up weekly, Sundays at 07:15 (UTC)');
  });

  it('never overwrites a key, overwrites the config only with --force, and names a wrong value', async () => {
    const here = join(dir, 'again');
    expect((await init([`--dir=${here}`, '--target=shop'])).exitCode).toBe(0);
    const key = await readFile(join(here, 'pg-backup-bot.key'), 'utf8');
    const again = await init([`--dir=${here}`, '--target=shop']);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/pg-backup-bot\.yml exists already: nothing written/);
    const forced = await init([`--dir=${here}`, '--target=shop', '--force']);
    expect(forced.exitCode).toBe(1);
    expect(forced.stderr).toMatch(/pg-backup-bot\.key exists already: init never overwrites a key/);
    expect(await readFile(join(here, 'pg-backup-bot.key'), 'utf8')).toBe(key);
    const other = await init([`--dir=${here}`, '--target=shop', '--force', '--key=second.key']);
    expect(other.exitCode, other.stderr).toBe(0);
    await writeFile(join(dir, 'unused'), '');
    const bad = await init([`--dir=${join(dir, 'bad')}`, '--target=Shop DB']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^--target=Shop DB: a target name is 1–48 characters/);
    const unknown = await init(['--colour=blue']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/^"--colour=blue" is not an option of init\.\nusage: pg-backup-bot init/);
  });
});
