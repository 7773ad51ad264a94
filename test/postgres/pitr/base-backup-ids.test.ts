import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { BotError } from '../../../src/errors.ts';
import { ToolPipeError } from '../../../src/postgres/backup/tool-chain.ts';
import { baseBackupFailure, runBaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { listBaseBackups } from '../../../src/postgres/pitr/pitr-restore.ts';
import { takeBaseBackup, verifyStoredBaseBackup } from '../../../src/postgres/pitr/take-base-backup.ts';
import { withClient } from '../../support/postgres-helpers.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';

// A key of the right shape whose last character was changed: its bech32 checksum fails.
const BAD_CHECKSUM_KEY = 'age1dcv6gxt573z39z3wccal4h0ntq9r3p0jx0m7ys85wtduhzevkunsdmpqeq';

/** Two base backups started in the same second (one waited for the other's lock) keep a directory each. */
describe('base backup ids', () => {
  let pg: EphemeralPostgres;
  let dir: string;
  beforeAll(async () => {
    pg = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-base-ids-'));
  });
  afterAll(async () => {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('are unique per target even within one second, and each reads back as written', async () => {
    const tools = await findPgTools({ serverMajor: 15 });
    const pgBasebackup = (await findPgProgram('pg_basebackup', tools.pgDump, tools.major)) as string;
    const at = new Date('2026-12-06T01:00:00.000Z');
    const run = () =>
      runBaseBackup({
        target: 'app',
        root: dir,
        replicationUrl: pg.url,
        pgBasebackup,
        zstd: 'zstd',
        level: 1,
        recipients: [],
        ageEngine: undefined,
        now: () => at,
      });
    const a = await run();
    const b = await run();
    expect([a.id, b.id]).toEqual(['app-base-20261206T010000Z', 'app-base-20261206T010000Z-2']);
    expect((await readdir(join(dir, 'app', '_base'))).sort()).toEqual([a.id, b.id]);
    expect((await listBaseBackups(dir, 'app')).map((x) => x.id).sort()).toEqual([a.id, b.id]);
    await verifyStoredBaseBackup(dir, a);
    await verifyStoredBaseBackup(dir, b);
    // A record that does not match what is on disk is refused, with a sentence.
    await expect(verifyStoredBaseBackup(dir, { ...a, sha256: '0'.repeat(64) })).rejects.toThrow(/does not match what was written/);
  }, 120_000);

  it('taken by a worker, first reserves WAL in the target’s slot, so the archive can receive everything from its start', async () => {
    const slot = 'pgbb_reserve_test';
    const config = { backupDir: dir, compressionLevel: 1, encryption: { recipients: [], optedOut: true }, pgBinDir: undefined, s3: undefined };
    const target = {
      name: 'fresh',
      url: pg.url,
      environment: 'staging' as const,
      excludeTables: [],
      schemas: [],
      verify: 'counts' as const,
      policy: { name: 'fresh', environment: 'staging' as const, backups: [], restoreTest: null, preMigration: { keepDays: 30 } },
      pitr: { url: pg.url, slot, walRetentionDays: 7, rpoSeconds: 3600 },
    };
    const b = await takeBaseBackup(config as never, target, { reserveWal: true });
    const rows = await withClient(pg.url, (c) =>
      c.query<{ reserved: boolean }>('SELECT restart_lsn <= $2::pg_lsn AS reserved FROM pg_replication_slots WHERE slot_name = $1', [slot, b.startLsn]),
    );
    expect(rows.rows).toEqual([{ reserved: true }]);
    // Idempotent: the slot is already there the next time.
    await expect(takeBaseBackup(config as never, target, { reserveWal: true })).resolves.toMatchObject({ target: 'fresh' });
  }, 120_000);

  it('is stamped by the server’s clock, not a worker clock behind it; by the worker’s when the server cannot be asked', async () => {
    const config = { backupDir: dir, compressionLevel: 1, encryption: { recipients: [], optedOut: true }, pgBinDir: undefined, s3: undefined };
    const target = {
      name: 'clocked',
      url: pg.url,
      environment: 'staging' as const,
      excludeTables: [],
      schemas: [],
      verify: 'counts' as const,
      policy: { name: 'clocked', environment: 'staging' as const, backups: [], restoreTest: null, preMigration: { keepDays: 30 } },
      pitr: { url: pg.url, slot: 'pgbb_clock_test', walRetentionDays: 7, rpoSeconds: 3600 },
    };
    // The worker's clock an hour behind the server's (this machine's, which the throwaway server shares).
    const behind = () => new Date(Date.now() - 3_600_000);
    const before = Date.now();
    const b = await takeBaseBackup(config as never, target, { now: behind });
    const after = Date.now();
    for (const t of [b.startedAt, b.finishedAt]) {
      expect(Date.parse(t)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(t)).toBeLessThanOrEqual(after + 1000);
    }
    expect(Date.parse(b.finishedAt)).toBeGreaterThanOrEqual(Date.parse(b.startedAt));
    // The ordinary connection refused (a closed port): the worker's clock, and the backup is still taken.
    const closed = { ...target, url: pg.url.replace(/:(\d+)\//, ':1/') };
    expect(closed.url).not.toBe(pg.url);
    const warned: string[] = [];
    const c = await takeBaseBackup(config as never, closed, { now: behind, warn: (m) => warned.push(m) });
    expect(Date.parse(c.finishedAt)).toBeLessThan(Date.now() - 3_500_000);
    expect(warned).toEqual([
      expect.stringMatching(
        /^The base backup of clocked is stamped by this host's clock: the server's could not be read over its ordinary connection \(.*ECONNREFUSED/,
      ),
    ]);
    // The server gone altogether: the failure is said, not the clock.
    const gone = { ...closed, pitr: { ...closed.pitr, url: closed.url } };
    const failedWarned: string[] = [];
    await expect(takeBaseBackup(config as never, gone, { now: behind, warn: (m) => failedWarned.push(m) })).rejects.toMatchObject({
      userMessage: 'The base backup of clocked failed: the server is not reachable on the replication URL: check its host and port.',
    });
    expect(failedWarned).toEqual([]);
  }, 120_000);
  it('that fails names its cause, not the broken pipe it left pg_basebackup, and leaves no directory behind (QA)', async () => {
    const tools = await findPgTools({ serverMajor: 15 });
    const pgBasebackup = (await findPgProgram('pg_basebackup', tools.pgDump, tools.major)) as string;
    const root = join(dir, 'failing');
    // A "zstd" that reads a little, says why it fails and exits: pg_basebackup and the tap die of the broken pipe.
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    const fakeZstd = join(bin, 'zstd-dies');
    await writeFile(fakeZstd, '#!/bin/sh\nhead -c 200000 > /dev/null\necho "zstd: simulated I/O error" >&2\nexit 3\n', { mode: 0o755 });
    for (const perl of ['perl', null]) {
      const err = await runBaseBackup({
        target: 'app',
        root,
        replicationUrl: pg.url,
        pgBasebackup,
        zstd: fakeZstd,
        level: 1,
        recipients: [],
        ageEngine: undefined,
        perl,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BotError);
      expect((err as BotError).userMessage).toBe('The base backup of app failed: zstd failed while compressing it: zstd: simulated I/O error');
      expect(await readdir(join(root, 'app', '_base'))).toEqual([]);
    }
  }, 120_000);

  it('a full disk is said as the disk-full sentence', () => {
    const enospc = Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' });
    const err = baseBackupFailure(
      new ToolPipeError('write', '', '', { detail: 'writing the artifact failed: /d/base.tar.zst.partial: No space left on device', cause: enospc }),
      { target: 'app', pgBasebackup: '/usr/bin/pg_basebackup' },
      '/d',
    );
    expect(err.code).toBe('disk_full');
    expect(err.userMessage).toMatch(/^The backup disk is full \(\/d\)/);
  });

  it('an age key the library cannot use is refused before the cluster is read', async () => {
    const config = { backupDir: dir, compressionLevel: 1, encryption: { recipients: [BAD_CHECKSUM_KEY], optedOut: false }, pgBinDir: undefined, s3: undefined };
    const target = {
      name: 'keyed',
      url: pg.url,
      environment: 'staging' as const,
      excludeTables: [],
      schemas: [],
      verify: 'counts' as const,
      policy: { name: 'keyed', environment: 'staging' as const, backups: [], restoreTest: null, preMigration: { keepDays: 30 } },
      pitr: { url: pg.url, slot: 'pgbb_key_test', walRetentionDays: 7, rpoSeconds: 3600 },
    };
    await expect(takeBaseBackup(config as never, target)).rejects.toThrow('BACKUP_ENCRYPTION_RECIPIENT: key 1 is not valid: its checksum does not match');
    expect(await readdir(join(dir, 'keyed', '_base')).catch(() => [])).toEqual([]);
  });
});
