import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { cli } from '../support/app-backups.ts';

/** What the CLI says points at the CLI: its own verbs, not slash commands; a typo is not a success. */
describe('the CLI’s own words', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-words-'));
    // Another target's backups are there: an empty BACKUP_DIR is a problem of its own (missing-backups.test.ts).
    await mkdir(join(dir, 'other'));
    env = { DATABASE_URL: 'postgres://pgbb@127.0.0.1:1/shop', BACKUP_DIR: dir };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('a server that accepts the connection and closes it at once is "could not connect", not a connection lost mid-backup', async () => {
    // A wrong port, or a proxy (pgbouncer) with no database behind it.
    const closer = createServer((socket) => socket.destroy());
    await new Promise<void>((r) => closer.listen(0, '127.0.0.1', r));
    const port = (closer.address() as AddressInfo).port;
    try {
      const { recipient } = await generateKeyPair();
      const r = await cli(['backup'], { ...env, DATABASE_URL: `postgres://pgbb@127.0.0.1:${port}/shop`, BACKUP_ENCRYPTION_RECIPIENT: recipient });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(
        `Backup FAILED: Could not connect to the database server at 127.0.0.1:${port} (the server closed the connection before it was established: a wrong port, or a proxy with no database behind it)`,
      );
      expect(r.stderr).not.toContain('was lost during the backup');
    } finally {
      await new Promise((r) => closer.close(r));
    }
  });

  it('--version prints the package’s version', async () => {
    const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await cli([flag], {});
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(`pg-backup-bot ${version}`);
    }
  });

  it('list: an empty known target points at `pg-backup-bot backup`; an unknown one fails and names the known ones', async () => {
    const empty = await cli(['list', 'shop'], env);
    expect(empty.exitCode).toBe(0);
    expect(empty.stdout).toBe('No finished backups of shop yet. Take one with pg-backup-bot backup shop.');
    const typo = await cli(['list', 'shpo'], env);
    expect(typo.exitCode).toBe(1);
    expect(typo.stderr).toBe('There is no target named "shpo". Known targets: shop.');
  });

  it('restore of something that is not a backup id points at `pg-backup-bot list`', async () => {
    const r = await cli(['restore', 'bogus'], env);
    expect(r.exitCode).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe('"bogus" is not a backup id (see `pg-backup-bot list`).');
    const none = await cli(['restore'], env);
    expect(none.exitCode).toBe(2);
    expect(none.stderr.split('\n')[0]).toBe('Name the backup to restore: `pg-backup-bot list` shows their ids.');
  });

  it('a backup id of a target with no backup, to restore, restore-test or fetch, says none is stored', async () => {
    const id = 'shop-20261205T090000Z';
    for (const args of [
      ['restore', id],
      ['restore-test', id],
      ['fetch', id, '-o', join(dir, 'out.dump')],
    ]) {
      const r = await cli(args, env);
      expect(r.exitCode, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toContain(`There is no finished backup ${id} of shop. No backup of shop is stored at all, nor of any other target.`);
    }
  });
});
