import { randomUUID } from 'node:crypto';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import type { LocalStorage, Manifest } from '../../src/storage/index.ts';
import { createLogger } from '../../src/logger.ts';
import { copyBackup } from '../../src/storage/index.ts';
import { s3CopyEnv, testS3Storage, useS3Server, type RawBucket, type TestS3Server } from '../support/s3-server.ts';
import { tempRoot } from '../storage/fixtures.ts';
import { store } from '../storage/retention-fixtures.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

describe('pg-backup-bot scrub', () => {
  let root: string;
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  let good: Manifest;
  let rotted: Manifest;

  beforeEach(async () => {
    ({ root, storage, cleanup } = await tempRoot());
    const now = new Date();
    good = await store(storage, 'shop', now, 1, 30);
    rotted = await store(storage, 'shop', now, 2, 30);
    // One bit flipped, the size unchanged: `list` still shows it; only reading it back can tell.
    const file = join(root, 'shop', rotted.backupId, 'database.pgdump.zst');
    const bytes = await readFile(file);
    bytes[3] = (bytes[3] ?? 0) ^ 0x10;
    await writeFile(file, bytes);
  });
  afterEach(() => cleanup());

  it('--all reads every backup back, marks the damaged one, exits 1; `list` then shows it as damaged, and so does the next run', async () => {
    const env = { BACKUP_DIR: root };
    expect((await cli(['list', 'shop'], env)).stdout).not.toMatch(/damaged/i);
    const run = await cli(['scrub', '--all'], env);
    expect(run.exitCode).toBe(1);
    const bytes = good.artifacts[0]?.bytes;
    expect(run.stdout.split('\n')).toEqual([
      `OK ${good.backupId}`,
      expect.stringMatching(
        new RegExp(
          `^DAMAGED ${rotted.backupId}: the checksum scrub found artifact corrupted: database\\.pgdump\\.zst \\(sha256 [0-9a-f]{12}… expected, [0-9a-f]{12}… found\\)\\. Marked damaged; take a new backup \\(\`pg-backup-bot backup shop\`\\) if you counted on it\\.$`,
        ),
      ),
      `Read back 2 of 2 stored backups on local:${root} (${bytes} B matching): 1 found damaged, 0 unreadable, 0 already damaged (not read).`,
    ]);
    expect(run.stderr).toContain('The channel is not told by this command: the bot’s next health check (every 15 min) pages the damaged backups as `damaged`.');
    const list = await cli(['list', 'shop'], env);
    expect(list.stdout).toContain(good.backupId);
    expect(list.stdout).toMatch(new RegExp(`${rotted.backupId}.*the checksum scrub found artifact corrupted.*; marked \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC`));
    // The damaged one is not read again, but still counts: the run is not all well while it is stored.
    const again = await cli(['scrub', '--all'], env);
    expect(again.stdout.split('\n')).toEqual([
      `OK ${good.backupId}`,
      expect.stringMatching(new RegExp(`^ALREADY DAMAGED ${rotted.backupId}: the checksum scrub found artifact corrupted: .*; marked `)),
      `Read back 1 of 1 stored backups on local:${root} (${bytes} B matching): 0 found damaged, 0 unreadable, 1 already damaged (not read).`,
    ]);
    expect(again.exitCode).toBe(1);
  });

  it('a damaged backup past its deadline is named by `list`, `scrub` and `retention --dry-run` with when it goes, and the next retention deletes it (QA)', async () => {
    const old = await store(storage, 'shop', new Date(), 40, 30);
    const file = join(root, 'shop', old.backupId, 'database.pgdump.zst');
    const bytes = await readFile(file);
    bytes[3] = (bytes[3] ?? 0) ^ 0x10;
    await writeFile(file, bytes);
    const env = { BACKUP_DIR: root, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: `{pgbbt${randomUUID().slice(0, 8)}}` };
    expect((await cli(['scrub', '--all'], env)).stdout).toMatch(new RegExp(`^DAMAGED ${old.backupId}: `, 'm'));
    const day = (old.retainUntil ?? '').slice(0, 10);
    const list = await cli(['list', 'shop'], env);
    expect(list.stdout).toMatch(
      new RegExp(
        `past its retention deadline: the next retention run deletes it: ${old.backupId} \\(the checksum scrub found artifact corrupted.*; deadline [^)]*${day} `,
      ),
    );
    const again = await cli(['scrub', '--all'], env);
    expect(again.stdout).toMatch(
      new RegExp(
        `^EXPIRED ${old.backupId}: damaged \\(the checksum scrub found .*\\), past its retention deadline \\([^)]*${day} [^)]*\\): the next retention run deletes it\\.$`,
        'm',
      ),
    );
    expect(again.stdout).toMatch(/, 1 damaged and past its deadline \(not read\)\.$/m);
    // Just marked: kept for the hour, and said (a repair may be rewriting it); then deleted.
    const soon = await cli(['retention', '--dry-run'], env);
    expect(soon.stdout).toMatch(new RegExp(`Kept ${old.backupId}: expired .*\\(marked damaged\\), kept: written to within the hour`));
    const dir = join(root, 'shop', old.backupId);
    const before = new Date(Date.now() - 2 * 3600_000);
    for (const f of await readdir(dir)) await utimes(join(dir, f), before, before);
    await utimes(dir, before, before);
    const dry = await cli(['retention', '--dry-run'], env);
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`Would delete ${old.backupId}: marked damaged, past its deadline \\(`));
    const run = await cli(['retention'], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`Deleted ${old.backupId}: marked damaged, past its deadline`));
    expect((await cli(['list', 'shop'], env)).stdout).not.toContain(old.backupId);
  });

  it('once every stored backup is damaged, restore-test says so rather than "no backup yet"', async () => {
    await storage.deleteBackup('shop', good.backupId);
    const env = { BACKUP_DIR: root, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop' };
    expect((await cli(['scrub', '--all'], env)).exitCode).toBe(1);
    const test = await cli(['restore-test', 'shop'], env);
    expect(test.stderr).toContain(
      'There is no good backup to test: the 1 stored is damaged (`pg-backup-bot list` says why); take a new one with `pg-backup-bot backup`.',
    );
    expect(test.exitCode).not.toBe(0);
    // `list` says there is nothing to restore, and does not exit 0 on it.
    const list = await cli(['list', 'shop'], env);
    expect(list.stdout).toMatch(/^No restorable backups of shop\./);
    expect(list.exitCode).toBe(1);
  });

  it('a restore test of the damaged backup fails on its checksums and gives no RTO, since nothing was restored', async () => {
    const env = { BACKUP_DIR: root, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop' };
    const test = await cli(['restore-test', rotted.backupId], env);
    expect(test.stdout.split('\n').slice(0, 2)).toEqual([`Restore test of ${rotted.backupId} FAILED`, '  restore (RTO)  n/a (nothing restored)']);
    expect(test.stdout).toMatch(/problem {8}artifact corrupted: database\.pgdump\.zst \(sha256 /);
    expect(test.exitCode).toBe(1);
  });

  it('once marked damaged, restore-test and restore of it are refused up front, naming why and the newest good backup', async () => {
    const env = { BACKUP_DIR: root, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/shop' };
    expect((await cli(['scrub', '--all'], env)).exitCode).toBe(1);
    const refusal = new RegExp(
      `^Backup ${rotted.backupId} cannot be restored: the checksum scrub found artifact corrupted: database\\.pgdump\\.zst \\(sha256 .*; marked \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\. The newest good backup of shop is \`${good.backupId}\`; \`pg-backup-bot list shop\` shows them all\\. Nothing was started\\.$`,
    );
    const test = await cli(['restore-test', rotted.backupId], env);
    expect(
      test.stderr
        .split('\n')
        .at(-1)
        ?.replace(/^Restore test could not run: /, ''),
    ).toMatch(refusal);
    expect(test.exitCode).toBe(1);
    // A replacement is refused before its confirmation is asked for, and with --yes too; nothing is restored.
    for (const args of [['--into=shop'], ['--into=shop', '--yes'], []]) {
      const restore = await cli(['restore', rotted.backupId, ...args], env);
      expect(restore.stderr.replace(/^Restore FAILED: /, '')).toMatch(refusal);
      expect(restore.exitCode).toBe(1);
    }
  });

  it('says so, and exits 1, when no backup is stored where it looks (a wrong BACKUP_DIR, a disk not mounted)', async () => {
    const run = await cli(['scrub', '--all'], { BACKUP_DIR: join(root, 'not-mounted') });
    expect(run.stderr).toBe(
      `No backup is stored on local:${join(root, 'not-mounted')}: nothing to read back. Is BACKUP_DIR (or the bucket) the bot's, and the disk mounted?`,
    );
    expect(run.exitCode).toBe(1);
  });

  it('without --all reads what the next daily run would, sharing the worker’s memory in Redis', async () => {
    const prefix = `{scrub-${randomUUID().slice(0, 8)}}`;
    const env = { BACKUP_DIR: root, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: prefix };
    // Two backups: a seventh of them is one, the one written longest ago first (the rotted one).
    const first = await cli(['scrub'], env);
    expect(first.stdout.split('\n')[0]).toMatch(new RegExp(`^DAMAGED ${rotted.backupId}: `));
    expect(first.exitCode).toBe(1);
    const second = await cli(['scrub'], env);
    expect(second.stdout.split('\n')[0]).toBe(`OK ${good.backupId}`);
    const redis = new Redis(inject('redisUrl'));
    try {
      expect(Object.keys(await redis.hgetall(`${prefix}:scrub:verified`))).toEqual([`shop/${good.backupId}`]);
    } finally {
      redis.disconnect();
    }
  });

  describe('with an S3 copy', () => {
    let server: TestS3Server;
    let raw: RawBucket;
    useS3Server((s, r) => {
      server = s;
      raw = r;
    });

    it('reads the copies back too: a copy rotted in the bucket is rewritten from the primary, a backup rotted on the primary from the copy; never without Redis', async () => {
      const prefix = `scrub-${randomUUID().slice(0, 8)}`;
      const copy = testS3Storage(server, { prefix });
      try {
        await copyBackup(storage, copy, good, { log: createLogger({ level: 'silent' }) });
        // The backup rotted on the primary went off-site whole, before it rotted.
        const rottedFile = join(root, 'shop', rotted.backupId, 'database.pgdump.zst');
        const rottedBytes = await readFile(rottedFile);
        const original = Buffer.from(rottedBytes);
        original[3] = (original[3] ?? 0) ^ 0x10;
        await writeFile(rottedFile, original);
        await copyBackup(storage, copy, rotted, { log: createLogger({ level: 'silent' }) });
        await writeFile(rottedFile, rottedBytes);
        // And one only the copy holds (the primary lost it), rotted there too: nothing to copy it again from.
        const only = await store(copy, 'shop', new Date(), 3, 30);
        const onlyKey = `${prefix}/shop/${only.backupId}/database.pgdump.zst`;
        const onlyBytes = await raw.get(onlyKey);
        onlyBytes[1] = (onlyBytes[1] as number) ^ 0x01;
        await raw.put(onlyKey, onlyBytes);
        const key = `${prefix}/shop/${good.backupId}/database.pgdump.zst`;
        const bytes = await raw.get(key);
        bytes[2] = (bytes[2] as number) ^ 0x01;
        await raw.put(key, bytes);
        const env = { BACKUP_DIR: root, ...s3CopyEnv(server, server.bucket, prefix) };
        const where = `s3://${server.bucket}/${prefix}`;
        // Without Redis the restores running now are unknown: the damage is found and marked, nothing is rewritten.
        const blind = await cli(['scrub', '--all'], env);
        expect(blind.stdout).toMatch(
          new RegExp(
            `^NOT HEALED ${rotted.backupId}: could not be rewritten from the copy in ${where}: the restores and restore tests running now are unknown \\(no Redis\\)`,
            'm',
          ),
        );
        expect(blind.stdout).toMatch(
          new RegExp(`^DAMAGED ${good.backupId} in ${where}: .* not rewritten: the restores and restore tests running now are unknown`, 'm'),
        );
        expect((await readFile(rottedFile)).equals(rottedBytes)).toBe(true);
        expect(blind.exitCode).toBe(1);
        // With the bot's Redis: both rewritten, each from the side that holds it whole, and read back.
        const withRedis = { ...env, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: `{scrub-${randomUUID().slice(0, 8)}}` };
        const run = await cli(['scrub', '--all'], withRedis);
        expect(run.stdout).toMatch(
          new RegExp(
            `^REPAIRED ${good.backupId} in ${where}: it was damaged \\(the checksum scrub found artifact corrupted: database\\.pgdump\\.zst .*\\); rewritten from the primary and read back whole\\.$`,
            'm',
          ),
        );
        expect(run.stdout).toMatch(
          new RegExp(
            `^HEALED ${rotted.backupId}: it was damaged \\(the checksum scrub found .*\\); rewritten from the copy in ${where} and read back whole\\.$`,
            'm',
          ),
        );
        expect((await raw.get(key)).equals(await readFile(join(root, 'shop', good.backupId, 'database.pgdump.zst')))).toBe(true);
        expect((await readFile(rottedFile)).equals(original)).toBe(true);
        // The one only the copy holds was said when found (blind run); it stays damaged there, and fails the run.
        expect(blind.stdout).toMatch(
          new RegExp(
            `^DAMAGED ${only.backupId} in ${where}: the checksum scrub found .*\\. Left out of the copy.s listings, not rewritten: the primary \\(local:${root}\\) does not hold it; take a new backup \\(\`pg-backup-bot backup shop\`\\) if you counted on it\\.$`,
            'm',
          ),
        );
        expect(run.stdout).toMatch(new RegExp(`^ALREADY DAMAGED ${only.backupId} in ${where}: `, 'm'));
        expect(run.exitCode, run.stdout).toBe(1);
        const again = await cli(['scrub', '--all'], withRedis);
        expect(again.stdout).toContain(`OK ${rotted.backupId}`);
        expect(again.stdout).toContain(`Read back 2 of 2 backups in ${where}`);
        expect(again.stdout).toContain(': 0 rewritten, 0 damaged, 0 unreadable, 1 already damaged (not read).');
        expect(again.exitCode).toBe(1);
      } finally {
        copy.destroy();
      }
    });
  });

  it('refuses other arguments with its usage', async () => {
    const run = await cli(['scrub', '--everything'], { BACKUP_DIR: root });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe('"--everything" is not an argument of scrub. usage: pg-backup-bot scrub [--all]');
  });
});
