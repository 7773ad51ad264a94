import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile, open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { findPgTools } from '../../src/postgres/index.ts';
import { ManifestSchema } from '../../src/storage/index.ts';
import type { AppDatabase } from '../support/app-database.ts';
import { appBackedUpByCli, cli } from '../support/app-backups.ts';
import { fingerprint } from '../support/fingerprint.ts';
import { withClient } from '../support/postgres-helpers.ts';

/**
 * `pg-backup-bot fetch` as it is used when the bot's database server is gone: the roles SQL and the archive of an
 * application database, fetched from storage and restored by hand with psql and pg_restore onto another server;
 * the copy is compared with the source by an independent fingerprint (rows, definitions, settings, large objects).
 */
describe('pg-backup-bot fetch: the archive for a restore by hand', () => {
  let dir: string;
  let app: AppDatabase;
  let newServer: EphemeralPostgres;
  let env: Record<string, string>;
  let backupId: string;
  let cleanup: () => Promise<void>;
  const out = () => join(dir, 'out');

  beforeAll(async () => {
    newServer = await startEphemeralPostgres();
    ({ dir, app, env, backupId, cleanup } = await appBackedUpByCli(inject('pgUrl'), 'fetch'));
    await execa('mkdir', [out()]);
  });

  afterAll(async () => {
    await newServer?.stop();
    await cleanup?.();
  });

  // Storage and the identity are all fetch needs: the database it came from may be the thing that is gone.
  const fetchEnv = () => ({ BACKUP_DIR: env.BACKUP_DIR ?? '', BACKUP_ENCRYPTION_IDENTITY_FILE: env.BACKUP_ENCRYPTION_IDENTITY_FILE ?? '' });

  it('fetches the roles SQL and the archive; restored by hand on a new server, the copy matches the source', async () => {
    const globals = await cli(['fetch', backupId, '--globals', '-o', join(out(), 'roles.sql')], fetchEnv());
    expect(globals.exitCode, globals.stderr).toBe(0);
    expect(globals.stderr).toMatch(/Fetched the globals \(roles SQL\) of app-.* sha256 and sizes match the manifest/);
    const archive = await cli(['fetch', backupId, '-o', join(out(), 'app.pgdump')], fetchEnv());
    expect(archive.exitCode, archive.stderr).toBe(0);
    expect(archive.stderr).toContain('pg_restore --create --exit-on-error -d postgres');
    // Nothing half-written is left beside the two files.
    expect((await readdir(out())).sort()).toEqual(['app.pgdump', 'roles.sql']);
    expect(await readFile(join(out(), 'roles.sql'), 'utf8')).toContain(`CREATE ROLE ${app.role}`);

    // The disaster-recovery steps of the README, run by hand: roles first, then the database with --create.
    const major = await withClient(newServer.url, async (c) =>
      Math.floor(Number((await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v) / 10000),
    );
    const tools = await findPgTools({ serverMajor: major });
    const psql = await execa(tools.psql, ['-X', '-d', newServer.url, '-f', join(out(), 'roles.sql')], { reject: false });
    expect(psql.exitCode, psql.stderr).toBe(0);
    const restore = await execa(tools.pgRestore, ['--create', '--exit-on-error', '-d', newServer.url, join(out(), 'app.pgdump')], { reject: false });
    expect(restore.exitCode, restore.stderr).toBe(0);
    const copy = new URL(newServer.url);
    copy.pathname = `/${app.name}`;
    const [source, restored] = await Promise.all([fingerprint(app.url), fingerprint(copy.toString())]);
    expect(Object.keys(source.tables)).toHaveLength(5);
    expect(Object.keys(source.largeObjects).length).toBeGreaterThanOrEqual(50);
    expect(restored).toEqual(source);
  });

  it('writes to standard output for a pipe, the archive byte for byte as pg_dump wrote it', async () => {
    const manifest = ManifestSchema.parse(JSON.parse(await readFile(join(env.BACKUP_DIR ?? '', 'app', backupId, 'manifest.json'), 'utf8')));
    const raw = manifest.artifacts.find((a) => a.role === 'database')?.rawBytes;
    const run = await execa('node', ['bin/pg-backup-bot.js', 'fetch', backupId, '-o', '-'], {
      env: { PATH: process.env.PATH ?? '', ...fetchEnv() },
      extendEnv: false,
      encoding: 'buffer',
      reject: false,
    });
    expect(run.exitCode, Buffer.from(run.stderr).toString()).toBe(0);
    const bytes = Buffer.from(run.stdout);
    expect(bytes.length).toBe(raw);
    expect(bytes.subarray(0, 5).toString()).toBe('PGDMP');
  });

  it('an output with no space left is said as that, the backup intact, never as a backup that does not decrypt', async () => {
    // /dev/full answers every write with ENOSPC, as a full disk does: the child's own stdout, not a pipe through us.
    const full = await openFile('/dev/full', 'w');
    try {
      const child = spawn('node', ['bin/pg-backup-bot.js', 'fetch', backupId, '-o', '-'], {
        env: { PATH: process.env.PATH ?? '', ...fetchEnv() },
        stdio: ['ignore', full.fd, 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      const [exitCode] = (await once(child, 'close')) as [number];
      const run = { exitCode, stderr };
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toMatch(
        /^Fetch failed: database\.pgdump\.zst\.age of backup \S+ could not be written out: ENOSPC: no space left on device.* \(no space left where the output goes\)\. The backup itself is intact \(its sha256 matches\)\. What was written is incomplete\.$/m,
      );
      expect(run.stderr).not.toMatch(/does not decrypt|corrupted/);
    } finally {
      await full.close();
    }
  });

  it('a damaged stored artifact: exit 1, says so, and leaves no file behind', async () => {
    const manifest = ManifestSchema.parse(JSON.parse(await readFile(join(env.BACKUP_DIR ?? '', 'app', backupId, 'manifest.json'), 'utf8')));
    const artifact = manifest.artifacts.find((a) => a.role === 'database');
    const path = join(env.BACKUP_DIR ?? '', 'app', backupId, artifact?.file ?? '');
    const original = await readFile(path);
    const damaged = Buffer.from(original);
    const at = Math.floor(damaged.length / 2);
    damaged[at] = (damaged[at] ?? 0) ^ 0xff;
    await writeFile(path, damaged);
    try {
      const run = await cli(['fetch', backupId, '-o', join(out(), 'damaged.pgdump')], fetchEnv());
      expect(run.exitCode).toBe(1);
      // Said as damage (it was "does not decrypt: invalid tag", which reads as a wrong key), with what to do.
      expect(run.stderr).toMatch(
        /Fetch failed: database\.pgdump\.zst\.age of backup \S+ is corrupted: [\d,]+ bytes with sha256 [0-9a-f]{12}… read, [\d,]+ bytes with [0-9a-f]{12}… recorded\. What was written is not the backup; fetch another backup \(`pg-backup-bot list app`\)\./,
      );
      expect(await readdir(out())).not.toContain('damaged.pgdump');
      expect((await readdir(out())).filter((f) => f.endsWith('.partial'))).toEqual([]);
    } finally {
      await writeFile(path, original);
    }
  });

  it('refuses an existing file, an unknown backup, a wrong key and a missing id, each with one sentence', async () => {
    const taken = join(out(), 'taken.pgdump');
    await (await openFile(taken, 'w')).close();
    const exists = await cli(['fetch', backupId, '-o', taken], fetchEnv());
    expect(exists.exitCode).toBe(1);
    expect(exists.stderr).toContain(`${taken} already exists`);
    expect((await readFile(taken)).length).toBe(0);

    const unknown = await cli(['fetch', 'app-20200101T000000Z', '-o', join(out(), 'x.pgdump')], fetchEnv());
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr).toMatch(/Fetch failed: .*app-20200101T000000Z/);

    const other = await generateKeyPair();
    await writeFile(join(dir, 'other.key'), other.identityFileText, { mode: 0o600 });
    const wrongKey = await cli(['fetch', backupId, '-o', join(out(), 'y.pgdump')], { ...fetchEnv(), BACKUP_ENCRYPTION_IDENTITY_FILE: join(dir, 'other.key') });
    expect(wrongKey.exitCode).toBe(1);
    expect(wrongKey.stderr).toMatch(/Fetch failed: /);
    expect(await readdir(out())).not.toContain('y.pgdump');

    const usage = await cli(['fetch'], fetchEnv());
    expect(usage.exitCode).toBe(2);
    expect(usage.stderr).toContain('usage: pg-backup-bot fetch <backup-id>');
  });

  it('with a BACKUP_DIR that does not exist (a disk not mounted), says so and creates nothing there: no audit trail on the root filesystem', async () => {
    const gone = join(dir, 'not-mounted');
    const run = await cli(['fetch', backupId, '-o', join(out(), 'z.pgdump')], { ...fetchEnv(), BACKUP_DIR: gone });
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain(`BACKUP_DIR ${gone} does not exist: no backup was ever written there.`);
    // The audit trail's miss said for what it is, not "something unexpected went wrong" (QA).
    expect(run.stderr).toContain(`(not recorded in the audit trail: ${gone} does not exist (the trail is kept in its _audit directory))`);
    expect(run.stderr).not.toMatch(/unexpected/);
    await expect(readdir(gone)).rejects.toThrow(/ENOENT/);
  });

  it('every fetch is in the audit trail, with who ran it and how it ended', async () => {
    const lines = (await readFile(join(env.BACKUP_DIR ?? '', '_audit', 'audit.jsonl'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { what: string; args: string; result: string });
    const fetches = lines.filter((l) => l.what === 'cli fetch');
    expect(fetches.some((l) => l.args.includes('--globals') && l.result.startsWith('fetched globals'))).toBe(true);
    expect(fetches.some((l) => l.result.startsWith('failed:'))).toBe(true);
  });
});
