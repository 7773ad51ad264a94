import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = resolve('bin/pg-backup-bot.js');

/** restore-pitr's refusals before it reads any archive: each says what was wrong, not only the usage (QA). */
describe('restore-pitr: what it says about its arguments and settings', () => {
  let dir: string;
  let config: string;
  // Run from a directory of its own: no ./pg-backup-bot.yml is found by accident.
  const run = (args: string[], env: Record<string, string>) =>
    execa('node', [bin, 'restore-pitr', ...args], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pitr-words-'));
    config = join(dir, 'bot.yml');
    await writeFile(config, 'targets:\n  - name: app\n    urlEnv: APP_URL\n    environment: production\n');
    await mkdir(join(dir, 'backups', 'app'), { recursive: true });
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('names the argument it did not understand', async () => {
    const data = `--data-dir=${join(dir, 'x')}`;
    const spaced = await run(['app', '--time', '2026-12-03 14:30:00+01', data], {});
    expect(spaced.exitCode).toBe(2);
    expect(spaced.stderr.split('\n')[0]).toBe(
      'restore-pitr: --time needs its value after "=", as in --time=… (given "--time 2026-12-03 14:30:00+01": write --time="2026-12-03 14:30:00+01").',
    );
    expect(spaced.stderr).toContain('usage: pg-backup-bot restore-pitr <target>');
    const last = await run(['--time=latest', data, 'app'], {});
    expect(last.stderr.split('\n')[0]).toBe('restore-pitr: The target (app) comes first, before the options: restore-pitr app --time=… --data-dir=DIR.');
    expect((await run(['app', '--time=latest', data, '--actoin=pause'], {})).stderr).toMatch(
      /^restore-pitr: "--actoin=pause" is not an option of restore-pitr\./,
    );
    expect((await run(['app', data], {})).stderr).toMatch(/^restore-pitr: --time is missing/);
    expect((await run(['app', '--time=latest', data, '--action=stop'], {})).stderr).toMatch(
      /^restore-pitr: --action=stop is not one of promote, pause, shutdown\./,
    );
    expect((await run(['app', '--time=latest', data, '--timeline=two'], {})).stderr).toMatch(
      /^restore-pitr: --timeline=two is not a timeline: a whole number from 1 on, as in 00000002\.history \(2\)\./,
    );
  });

  it('with no config file read and no targets, says so', async () => {
    const r = await run(['shop', '--time=latest', `--data-dir=${join(dir, 'x')}`], { BACKUP_DIR: join(dir, 'backups') });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      `Point-in-time restore FAILED: There is no target named "shop". Known targets: none. No config file was read (BOT_CONFIG is not set, and there is no ./pg-backup-bot.yml in ${dir}): set BOT_CONFIG to the file that lists the targets.`,
    );
  });

  it('a BACKUP_DIR that does not exist is said with where it looked, not "take a base backup"', async () => {
    const gone = join(dir, 'no-such-dir');
    const r = await run(['app', '--time=latest', `--data-dir=${join(dir, 'x')}`], { BOT_CONFIG: config, BACKUP_DIR: gone });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      `Point-in-time restore FAILED: BACKUP_DIR ${gone} does not exist: no backup was ever written there. If the backups are elsewhere, set BACKUP_DIR to that directory. restore-pitr looks for the base backups and WAL of app in ${join(gone, 'app')}.`,
    );
  });

  it('an identity file that cannot be read is a sentence that says what needs it', async () => {
    const key = join(dir, 'missing-key.txt');
    const r = await run(['app', '--time=latest', `--data-dir=${join(dir, 'x')}`], {
      BOT_CONFIG: config,
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_IDENTITY_FILE: key,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      `Point-in-time restore FAILED: BACKUP_ENCRYPTION_IDENTITY_FILE (${key}) does not exist (ENOENT); restore-pitr needs it to decrypt the base backup and the WAL.`,
    );
  });
});
