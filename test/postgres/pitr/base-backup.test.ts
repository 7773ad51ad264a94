import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAgeEngine } from '../../../src/crypto/age-cli.ts';
import { createDecryptStream, generateKeyPair, loadIdentity } from '../../../src/crypto/age.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { runBaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { withClient } from '../../support/postgres-helpers.ts';
import { cli } from '../../support/app-backups.ts';

/**
 * A base backup of a cluster of its own (wal_level=replica): streamed through zstd and age into the storage,
 * its sha256 as stored, and — decrypted, decompressed and unpacked — passing PostgreSQL's own `pg_verifybackup`
 * against the backup_manifest pg_basebackup put in it.
 */
describe('a base backup for point-in-time recovery', () => {
  let pg: EphemeralPostgres;
  let dir: string;
  let identityFile: string;
  let recipient: string;
  let bin: { pgBasebackup: string; pgVerifybackup: string };

  beforeAll(async () => {
    pg = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-base-'));
    const keys = await generateKeyPair();
    recipient = keys.recipient;
    identityFile = join(dir, 'key.txt');
    await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
    const tools = await findPgTools({ serverMajor: 15 });
    const [pgBasebackup, pgVerifybackup] = await Promise.all(['pg_basebackup', 'pg_verifybackup'].map((n) => findPgProgram(n, tools.pgDump, tools.major)));
    if (!pgBasebackup || !pgVerifybackup) throw new Error('pg_basebackup / pg_verifybackup are not installed');
    bin = { pgBasebackup, pgVerifybackup };
    await withClient(pg.url, (c) => c.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g'));
  });
  afterAll(async () => {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams it encrypted into the storage, and what is stored unpacks to a backup pg_verifybackup accepts', async () => {
    const root = join(dir, 'backups');
    const b = await runBaseBackup({
      target: 'app',
      root,
      replicationUrl: pg.url,
      pgBasebackup: bin.pgBasebackup,
      zstd: 'zstd',
      level: 2,
      recipients: [recipient],
      ageEngine: await findAgeEngine(),
    });
    expect(b).toMatchObject({ target: 'app', file: 'base.tar.zst.age', encryption: 'age', timeline: 1 });
    expect(b.startLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(b.endLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(b.bytes).toBeLessThan(b.rawBytes);
    const stored = await readFile(join(root, 'app', '_base', b.id, b.file));
    expect(stored.length).toBe(b.bytes);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(b.sha256);
    expect(JSON.parse(await readFile(join(root, 'app', '_base', b.id, 'base.json'), 'utf8'))).toEqual(b);

    const identity = await loadIdentity(identityFile, 'test');
    const compressed = await buffer(await createDecryptStream(Readable.from(stored), identity, []));
    const tar = (await execa('zstd', ['-dc'], { input: compressed, encoding: 'buffer' })).stdout as unknown as Buffer;
    expect(tar.length).toBe(b.rawBytes);
    const unpacked = join(dir, 'unpacked');
    await mkdir(unpacked, { mode: 0o700 });
    await execa('tar', ['-xf', '-', '-C', unpacked], { input: tar });
    // -n: the WAL is not in the base backup (-X none); it comes from the archive, checked at restore.
    const verify = await execa(bin.pgVerifybackup, ['-n', unpacked], { reject: false });
    expect(verify.exitCode, `${verify.stdout}\n${verify.stderr}`).toBe(0);
    expect(verify.stdout).toMatch(/backup successfully verified/);
  }, 120_000);

  it('is taken by the CLI for a target with a pitr section, and refused with a sentence for one without', async () => {
    const config = join(dir, 'pg-backup-bot.yml');
    await writeFile(
      config,
      'encryption: age\ntargets:\n  - name: app\n    urlEnv: APP_URL\n    environment: production\n    pitr: { urlEnv: APP_REPLICATION_URL }\n  - name: plain\n    urlEnv: APP_URL\n    environment: staging\n',
    );
    const env = {
      BOT_CONFIG: config,
      APP_URL: pg.url,
      APP_REPLICATION_URL: pg.url,
      BACKUP_DIR: join(dir, 'cli-backups'),
      BACKUP_ENCRYPTION_RECIPIENT: recipient,
    };
    const ok = await cli(['base-backup', 'app'], env);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /^Base backup app-base-\d{8}T\d{6}Z OK\n {2}size .* encrypted with age\n[\s\S]*WAL {9}[0-9A-F]+\/[0-9A-F]+ to [0-9A-F]+\/[0-9A-F]+ on timeline 1 \(its backup_manifest\): recovery from it needs that WAL in the archive/,
    );
    // No worker streams this target's WAL here: said, as recovery from it needs that WAL archived (QA).
    expect(ok.stdout).toMatch(
      /\n {2}note {8}no worker streams this target's WAL now \(its slot pgbb_app (has no receiver connected|does not exist on the server)\): the window opens only once/,
    );
    const none = await cli(['base-backup', 'plain'], env);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toBe('Target plain has no pitr section in the config file: a base backup needs its replication connection (pitr.urlEnv).');
  }, 120_000);
});
