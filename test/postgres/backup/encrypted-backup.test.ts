import { defaultTarget } from '../../../src/config.ts';
import { chmod, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../../src/crypto/age.ts';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { dropDatabase, runRestoreTest, runSelectiveRestore } from '../../../src/postgres/restore/index.ts';
import { findPgTools } from '../../../src/postgres/index.ts';
import { runBackup } from '../../../src/postgres/backup/index.ts';
import { ManifestSchema, type Manifest } from '../../../src/storage/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { backupOptions, childProcesses, hookedStorage, silentLog, tempStorage } from '../../support/postgres-helpers.ts';
import { failure } from '../restore/restore-helpers.ts';

const schema = await readFile(new URL('../../fixtures/realistic-schema.sql', import.meta.url), 'utf8');

async function scratchDatabases(serverUrl: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: serverUrl });
  await c.connect();
  const { rows } = await c.query<{ datname: string }>("select datname from pg_database where datname like 'pgbb_rt_%'");
  await c.end();
  return rows.map((r) => r.datname);
}

describe('encrypted backups (age)', () => {
  // Restores go to a server of their own: on the shared one, a harness starting in another test file drops
  // scratch databases it does not know, and other files count them.
  let server: EphemeralPostgres;
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let dir: string;
  let keys: Array<{ recipient: string; file: string }>;
  let manifest: Manifest;
  let n = 0;
  const encrypted = () => ({ encryption: { recipients: keys.map((k) => k.recipient) } });
  const keyFile = (i: number) => keys[i]?.file ?? '';
  const restoreTest = (extra: { identityFile?: string; input?: 'file' | 'stream'; agePath?: string | null | undefined; manifest?: Manifest } = {}) =>
    runRestoreTest({
      manifest,
      storage: store.storage,
      serverUrl: server.url,
      scratchKey: `job:enc-${process.pid}-${++n}`,
      tempDir: dir,
      log: silentLog,
      ...extra,
    });

  beforeAll(async () => {
    server = await startEphemeralPostgres();
    source = await createTestDatabase(inject('pgUrl'), 'encsrc');
    await runSql(source.url, schema);
    store = await tempStorage();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-enc-'));
    keys = [];
    for (const name of ['ops', 'escrow', 'stranger']) {
      const kp = await generateKeyPair();
      const file = join(dir, `${name}.key`);
      await writeFile(file, kp.identityFileText, { mode: 0o600 });
      keys.push({ recipient: kp.recipient, file });
    }
    // Encrypted to the first two; the third key is the "wrong identity".
    manifest = await runBackup(backupOptions(source.url, store.storage, { encryption: { recipients: [keys[0]?.recipient ?? '', keys[1]?.recipient ?? ''] } }));
  });
  afterAll(async () => {
    await source?.drop();
    await store?.cleanup();
    await rm(dir, { recursive: true, force: true });
    await server?.stop();
  });

  it('encrypts the database and the globals, and the manifest records the recipients', async () => {
    expect(ManifestSchema.parse(manifest)).toEqual(manifest);
    const recipients = [keys[0]?.recipient, keys[1]?.recipient];
    expect(manifest.artifacts.map((a) => [a.file, a.role, a.compression, a.encryption])).toEqual([
      ['database.pgdump.zst.age', 'database', 'zstd', { scheme: 'age', recipients }],
      ['globals.sql.zst.age', 'globals', 'zstd', { scheme: 'age', recipients }],
    ]);
    const files = (await readdir(join(store.root, 'app', manifest.backupId))).sort();
    expect(files).toEqual(['database.pgdump.zst.age', 'globals.sql.zst.age', 'manifest.json']);
    const stanzas = async (f: string) => {
      const text = (await readFile(join(store.root, 'app', manifest.backupId, f))).toString('latin1');
      expect(text.startsWith('age-encryption.org/v1\n')).toBe(true);
      return text
        .slice(0, text.indexOf('\n---'))
        .split('\n')
        .filter((l) => l.startsWith('-> X25519 ')).length;
    };
    // The database artifact also names the backup's own read-back key (dropped after the backup), the globals do not.
    expect(await stanzas('database.pgdump.zst.age')).toBe(3);
    expect(await stanzas('globals.sql.zst.age')).toBe(2);
    expect(manifest.artifacts[0]?.rawBytes).toBeGreaterThan(manifest.artifacts[0]?.bytes ?? Infinity);
  });

  it('interoperates: `age -d -i key | zstd -d | pg_restore --list` reads the database, and the globals are SQL', async () => {
    const pgRestore = (await findPgTools({ serverMajor: 12 })).pgRestore;
    const base = join(store.root, 'app', manifest.backupId);
    for (const [i, key] of [keyFile(0), keyFile(1)].entries()) {
      // Through files: pg_restore --list stops after the TOC, and a pipe behind it would die of SIGPIPE.
      const out = join(dir, `interop-${i}`);
      await execa('age', ['-d', '-i', key, '-o', `${out}.zst`, join(base, 'database.pgdump.zst.age')]);
      await execa('zstd', ['-dq', `${out}.zst`, '-o', out]);
      const { stdout } = await execa(pgRestore, ['--list', out]);
      expect(stdout).toContain('TABLE shop orders_2025');
    }
    const globals = await execa('age', ['-d', '-i', keyFile(0), join(base, 'globals.sql.zst.age')], { encoding: 'buffer' }).pipe('zstd', ['-dc']);
    expect(String(globals.stdout)).toMatch(/CREATE ROLE/);
    const wrong = await execa('age', ['-d', '-i', keyFile(2), join(base, 'database.pgdump.zst.age')], { reject: false });
    expect(wrong.exitCode).not.toBe(0);
  });

  it('restore test: checksums on the encrypted bytes, then decrypts and passes, from a file and from a stream, with the age CLI and the library', async () => {
    for (const agePath of [undefined, null]) {
      for (const input of ['file', 'stream'] as const) {
        const outcome = await restoreTest({ identityFile: keyFile(1), input, agePath });
        expect(outcome.problems).toEqual([]);
        expect(outcome.passed).toBe(true);
        expect(outcome.checked.checksums).toEqual([
          { file: 'database.pgdump.zst.age', ok: true },
          { file: 'globals.sql.zst.age', ok: true },
        ]);
        expect(outcome.restoreMethod?.input).toBe(input);
      }
    }
  });

  it('decompressing to a file, the age CLI decrypts (reading the identity file itself) when it is installed', async () => {
    // A wrapper that records its arguments, then runs the real age.
    const wrapper = join(dir, 'age-wrapper.sh');
    const argvLog = join(dir, 'age-argv.log');
    await writeFile(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${argvLog}'\nexec age "$@"\n`, { mode: 0o700 });
    const outcome = await restoreTest({ identityFile: keyFile(0), input: 'file', agePath: wrapper });
    expect(outcome.problems).toEqual([]);
    const calls = (await readFile(argvLog, 'utf8')).trim().split('\n');
    // `--version` is the probe; then one decryption, given the identity file's path — never a key.
    expect(calls.filter((c) => c !== '--version')).toEqual([`-d -i ${keyFile(0)} ${join(store.root, 'app', manifest.backupId, 'database.pgdump.zst.age')}`]);
  });

  it('an encrypted artifact damaged before it was hashed fails as "does not decrypt", with the CLI and with the library', async () => {
    const bad = await runBackup(backupOptions(source.url, store.storage, encrypted()));
    const path = join(store.root, 'app', bad.backupId, 'database.pgdump.zst.age');
    const bytes = await readFile(path);
    bytes.fill(0x55, Math.floor(bytes.length / 2), Math.floor(bytes.length / 2) + 64);
    await writeFile(path, bytes);
    const edited: Manifest = structuredClone(bad);
    const a = edited.artifacts.find((x) => x.file === 'database.pgdump.zst.age');
    if (!a) throw new Error('no database artifact');
    a.sha256 = createHash('sha256').update(bytes).digest('hex');
    for (const agePath of [undefined, null]) {
      const outcome = await restoreTest({ identityFile: keyFile(0), input: 'file', agePath, manifest: edited });
      expect(outcome.passed).toBe(false);
      expect(outcome.problems).toHaveLength(1);
      expect(outcome.problems[0]).toMatch(/^the database artifact does not decrypt: /);
      expect(outcome.dropped).toBe(true);
    }
    expect(await scratchDatabases(server.url)).toEqual([]);
  });

  it('a wrong identity fails with the clear sentence before any scratch database exists', async () => {
    const err = await failure(restoreTest({ identityFile: keyFile(2) }));
    expect(err.code).toBe('decryption_failed');
    expect(err.userMessage).toBe(
      `The backup is encrypted for another key: BACKUP_ENCRYPTION_IDENTITY_FILE does not match any of its recipients (${keys[0]?.recipient}, ${keys[1]?.recipient}).`,
    );
    expect(await scratchDatabases(server.url)).toEqual([]);
  });

  it('a missing identity names BACKUP_ENCRYPTION_IDENTITY_FILE', async () => {
    const err = await failure(restoreTest());
    expect(err.code).toBe('decryption_failed');
    expect(err.userMessage).toMatch(new RegExp(`^Backup ${manifest.backupId} is encrypted with age, but BACKUP_ENCRYPTION_IDENTITY_FILE is not set`));
  });

  it('encrypts the same way in-process when the age CLI is not there, and that backup restores too', async () => {
    const inProcess = await runBackup(backupOptions(source.url, store.storage, { ...encrypted(), agePath: null, verify: 'full' }));
    expect(inProcess.artifacts.map((a) => a.file)).toEqual(['database.pgdump.zst.age', 'globals.sql.zst.age']);
    // 'full' verification fed from the tap counts the raw bytes zstd reported.
    expect(inProcess.artifacts[0]?.rawBytes).toBeGreaterThan(0);
    const outcome = await runRestoreTest({
      manifest: inProcess,
      storage: store.storage,
      serverUrl: server.url,
      scratchKey: `job:enc-lib-${process.pid}`,
      identityFile: keyFile(0),
      log: silentLog,
    });
    expect(outcome.problems).toEqual([]);
  });

  it('a corrupted encrypted artifact fails on its checksum, before the key is even tried', async () => {
    const copy = await runBackup(backupOptions(source.url, store.storage, encrypted()));
    const path = join(store.root, 'app', copy.backupId, 'database.pgdump.zst.age');
    const bytes = await readFile(path);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    const outcome = await runRestoreTest({
      manifest: copy,
      storage: store.storage,
      serverUrl: server.url,
      scratchKey: `job:enc-bad-${process.pid}`,
      identityFile: keyFile(2),
      log: silentLog,
    });
    expect(outcome.passed).toBe(false);
    expect(outcome.problems[0]).toMatch(/^artifact corrupted: database\.pgdump\.zst\.age/);
  });

  it('selective restore decrypts too', async () => {
    const db = `enc_sel_${process.pid}`;
    try {
      const outcome = await runSelectiveRestore({
        manifest,
        storage: store.storage,
        serverUrl: server.url,
        tables: ['shop.customers'],
        schemas: [],
        into: { database: db, create: true },
        identityFile: keyFile(0),
        log: silentLog,
      });
      expect(outcome.problems).toEqual([]);
      expect(outcome.restoredTables.map((t) => [t.name, t.rows])).toEqual([['shop.customers', 200]]);
    } finally {
      await dropDatabase(server.url, db).catch(() => undefined);
    }
  });
});

describe('the encryption policy', () => {
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;

  beforeAll(async () => {
    source = await createTestDatabase(inject('pgUrl'), 'polsrc');
    await runSql(source.url, 'CREATE TABLE t AS SELECT i FROM generate_series(1, 100) i');
    store = await tempStorage();
  });
  afterAll(async () => {
    await source?.drop();
    await store?.cleanup();
  });

  it('refuses an unencrypted production backup before dumping, and keeps nothing', async () => {
    for (const encryption of [null, { recipients: [] }, { recipients: [], optedOut: false }]) {
      const err = await failure(runBackup(backupOptions(source.url, store.storage, { encryption })));
      expect(err.code).toBe('encryption_required');
      expect(err.userMessage).toBe(
        'Refusing an unencrypted backup of app (production): run `npx pg-backup-bot init` (it makes an age key pair), or make one with `age-keygen -o backup.key` and set BACKUP_ENCRYPTION_RECIPIENT to its public key (age1…), or say `encryption: none` in the config file to keep backups unencrypted.',
      );
    }
    expect(await readdir(store.root)).toEqual([]);
  });

  it('takes it with `encryption: none`, and for a staging target', async () => {
    const optedOut = await runBackup(backupOptions(source.url, store.storage, { encryption: { recipients: [], optedOut: true } }));
    const staging = await runBackup(backupOptions(source.url, store.storage, { target: defaultTarget('stage', source.url, 'staging'), encryption: null }));
    for (const m of [optedOut, staging])
      expect(m.artifacts.map((a) => [a.file, a.encryption])).toEqual([
        ['database.pgdump.zst', null],
        ['globals.sql.zst', null],
      ]);
  });

  it('is canceled mid-dump like any backup: nothing kept, no age (or pg_dump, zstd) left running', async () => {
    await runSql(source.url, 'CREATE TABLE big AS SELECT i, md5(i::text) AS a, md5((i * 3)::text) AS b FROM generate_series(1, 300000) i');
    const kp = await generateKeyPair();
    const abort = new AbortController();
    let sawAge = false;
    const storage = hookedStorage(store.storage, {
      onFirstChunk: async () => {
        sawAge = (await childProcesses()).some((p) => /^age /.test(p.cmdline));
        abort.abort();
      },
    });
    const before = await store.storage.list();
    const err = await failure(runBackup(backupOptions(source.url, storage, { signal: abort.signal, encryption: { recipients: [kp.recipient] } })));
    expect(sawAge).toBe(true);
    expect(err.code).toBe('canceled');
    expect(await store.storage.list()).toEqual(before);
    expect((await childProcesses()).filter((p) => /pg_dump|zstd|^age /.test(p.cmdline))).toEqual([]);
  });

  it('never reports good an encrypted backup whose dump is unreadable (read back through its own key)', async () => {
    const real = await findPgTools({ serverMajor: 12 });
    const bin = await mkdtemp(join(tmpdir(), 'pgbb-badbin-'));
    try {
      // A pg_dump that exits 0 after writing something that is not an archive.
      await writeFile(join(bin, 'pg_dump'), `#!/bin/sh\nif [ "$1" = --version ]; then exec '${real.pgDump}' --version; fi\nhead -c 200000 /dev/urandom\n`);
      await chmod(join(bin, 'pg_dump'), 0o755);
      for (const t of ['pg_dumpall', 'pg_restore', 'psql'] as const) await symlink(join(real.pgDump, '..', t), join(bin, t));
      const kp = await generateKeyPair();
      const err = await failure(runBackup(backupOptions(source.url, store.storage, { pgBinDir: bin, encryption: { recipients: [kp.recipient] } })));
      expect(err.code).toBe('pg_dump_failed');
      expect(err.userMessage).toMatch(/could not be read back \(pg_restore could not read the archive\); it was not kept/);
      // Nothing was kept: only the two finished (unencrypted) backups of the test before are there.
      const finished = await store.storage.list();
      expect(finished.every((m) => m.artifacts.every((a) => a.encryption === null))).toBe(true);
      expect((await readdir(join(store.root, 'app'))).length + (await readdir(join(store.root, 'stage'))).length).toBe(finished.length);
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });
});
