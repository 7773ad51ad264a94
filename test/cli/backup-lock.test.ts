import { randomUUID } from 'node:crypto';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { createRunLog } from '../../src/health/last-runs.ts';
import { aroundSwap } from '../../src/jobs/replacement-marks.ts';
import { withClient } from '../support/postgres-helpers.ts';
import pg from 'pg';
import { loadSampleSchema } from '../e2e/harness.ts';
import { createTestDatabase } from '../support/databases.ts';

const cli = (args: string[], env: Record<string, string>) =>
  execa('node', ['bin/pg-backup-bot.js', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, extendEnv: false, reject: false });

/**
 * `pg-backup-bot backup` takes the workers' lock of its target when REDIS_URL names the bot's Redis: never a second
 * dump beside a scheduled one, and a scheduled one waits for it. Without Redis (Slack and Redis both down) it still runs.
 */
describe('the CLI backup and the bot’s lock on its target', () => {
  let dir: string;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: Redis;
  let env: Record<string, string>;
  const prefix = `{cli-lock-${randomUUID().slice(0, 8)}}`;
  const lockKey = `${prefix}:lock:backup:shop`;
  const backups = async () => (await readdir(join(dir, 'backups', 'shop')).catch(() => [] as string[])).filter((n) => n.startsWith('shop-'));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-lock-'));
    const keys = await generateKeyPair();
    await writeFile(join(dir, 'backup.key'), keys.identityFileText, { mode: 0o600 });
    db = await createTestDatabase(inject('pgUrl'), 'clilock');
    await loadSampleSchema(db.url);
    redis = new Redis(inject('redisUrl'));
    env = {
      DATABASE_URL: db.url,
      TARGET_NAME: 'shop',
      BACKUP_DIR: join(dir, 'backups'),
      BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: prefix,
    };
  });

  afterAll(async () => {
    redis?.disconnect();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses to start beside a backup of the same target that a worker runs, and names its job', async () => {
    await redis.set(lockKey, '42', 'PX', 60_000);
    try {
      const run = await cli(['backup'], env);
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toBe("A backup of shop is already running: job 42 of the bot's workers. Nothing was started; run this again when it has ended.");
      expect(await backups()).toEqual([]);
      expect(await redis.get(lockKey)).toBe('42');
    } finally {
      await redis.del(lockKey);
    }
  });

  it('waits for no replacement: refused while one swaps its database, and said so', async () => {
    await redis.set(`${prefix}:replacing:shop`, 'restore-shop-1234', 'EX', 60);
    try {
      const run = await cli(['backup'], env);
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toBe(
        'A backup of shop is already running: restore job restore-shop-1234 is swapping its database for a restored copy (seconds). Nothing was started; run this again when it has ended.',
      );
      expect(await redis.get(lockKey)).toBeNull();
    } finally {
      await redis.del(`${prefix}:replacing:shop`);
    }
  });

  it("a dump whose sessions a replacement's swap ends says so, and is not a failed run (review)", async () => {
    // The dump waits on a lock an application holds; the replacement's swap (its Redis part, then its ending of
    // every session of the database) comes meanwhile.
    const locker = new pg.Client({ connectionString: db.url });
    locker.on('error', () => undefined);
    await locker.connect();
    await locker.query('BEGIN; LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE');
    const runs = createRunLog(redis, prefix);
    const before = await runs.last('shop');
    const running = cli(['backup'], env);
    const waiting = async () =>
      withClient(
        db.url,
        async (c) => (await c.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)).rowCount ?? 0,
      );
    for (const end = Date.now() + 30_000; (await waiting()) === 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50));
    const around = await aroundSwap(redis, prefix, ['shop'], {
      restoreJobId: 'restore-shop-77',
      database: db.name,
      keptAs: `${db.name}_replaced_20261207t101500`,
      confirmedBy: 'U0ADMIN',
      at: new Date().toISOString(),
    });
    expect(around.ended).toEqual([{ target: 'shop', holder: `cli:${hostname()}:${running.pid}` }]);
    await withClient(db.url, (c) =>
      c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()'),
    );
    await around.release(true);
    const run = await running;
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain(
      `Backup ENDED: the replacement of ${db.name} (restore job restore-shop-77) swapped the databases and ended its sessions; nothing was stored. Run it again to back up the restored database (the one replaced is kept as ${db.name}_replaced_20261207t101500).`,
    );
    expect(run.stderr).not.toContain('FAILED');
    expect(await runs.last('shop')).toEqual(before);
    await locker.end().catch(() => undefined);
  });

  it("a CLI replacement marks the bot's backup running at its swap, and lets backups start again after it (review)", async () => {
    const id = /^Backup (\S+) OK/.exec((await cli(['backup'], env)).stdout)?.[1] ?? '';
    expect(id).not.toBe('');
    await redis.set(lockKey, '42', 'PX', 60_000);
    try {
      const run = await cli(['restore', id, `--into=${db.name}`, '--yes'], { ...env, BACKUP_ENCRYPTION_IDENTITY_FILE: join(dir, 'backup.key') });
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toContain(
        'A backup of shop was running at the swap (job `42`): the swap ended it, unless it had just finished; it runs again on the restored database, and pages nobody.',
      );
      const mark = JSON.parse((await redis.get(`${prefix}:replaced-under:42`)) ?? '{}') as { restoreJobId?: string; keptAs?: string; database?: string };
      expect(mark).toMatchObject({
        restoreJobId: expect.stringMatching(/^cli:/),
        database: db.name,
        keptAs: expect.stringMatching(new RegExp(`^${db.name}_replaced_`)),
      });
      expect(await redis.exists(`${prefix}:replacing:shop`)).toBe(0);
      expect((await cli(['restore', 'drop', mark.keptAs as string, '--yes'], env)).exitCode).toBe(0);
    } finally {
      await redis.del(lockKey, `${prefix}:replaced-under:42`);
      // The tests below count the backups they make.
      await rm(join(dir, 'backups', 'shop', id), { recursive: true, force: true });
    }
  });

  it("writes nothing into a BACKUP_DIR that is not the bot's storage (its mark gone: a disk not mounted), as a worker does", async () => {
    const id = /^Backup (\S+) OK/.exec((await cli(['backup'], env)).stdout)?.[1] ?? '';
    expect(id).not.toBe('');
    const backupsDir = join(dir, 'backups');
    await rename(backupsDir, `${backupsDir}.mounted`);
    await mkdir(backupsDir);
    try {
      const run = await cli(['backup'], env);
      expect(run.exitCode).toBe(1);
      expect(run.stderr).toContain(
        `Backup FAILED: BACKUP_DIR ${backupsDir} is not the storage the bot has written its backups to: its .pg-backup-bot-storage is gone`,
      );
      expect(await readdir(backupsDir)).toEqual([]);
    } finally {
      await rm(backupsDir, { recursive: true, force: true });
      await rename(`${backupsDir}.mounted`, backupsDir);
      // The tests below count the backups they make.
      await rm(join(backupsDir, 'shop', id), { recursive: true, force: true });
    }
  });

  it('holds the lock while it dumps, so a worker’s backup waits, and releases it at the end', async () => {
    const running = cli(['backup'], env);
    const holders = new Set<string>();
    while (running.exitCode === undefined || running.exitCode === null) {
      const holder = await redis.get(lockKey);
      if (holder) holders.add(holder);
      if (await Promise.race([running.then(() => true), new Promise((r) => setTimeout(() => r(false), 10))])) break;
    }
    const run = await running;
    expect(run.exitCode, run.stderr).toBe(0);
    expect([...holders]).toEqual([expect.stringMatching(new RegExp(`^cli:${hostname()}:\\d+$`))]);
    expect(await redis.get(lockKey)).toBeNull();
    expect(await backups()).toHaveLength(1);
  }, 60_000);

  it('records each run in the bot’s run log, as a worker does: `check` judges the last backup by it', async () => {
    const runs = createRunLog(redis, prefix);
    const failed = await cli(['backup'], { ...env, DATABASE_URL: `${db.url}_gone` });
    expect(failed.exitCode).toBe(1);
    const bad = await runs.last('shop');
    expect(bad).toMatchObject({ ok: false, jobId: `cli:${hostname()}`, reason: expect.stringMatching(/does not exist/) });
    const check = await cli(['check'], env);
    expect(check.stdout).toMatch(/backup-failing: last run failed at .* \(`pg-backup-bot backup` on [^)]+\): .*does not exist/);
    expect((await cli(['backup'], env)).exitCode).toBe(0);
    expect(await runs.last('shop')).toMatchObject({ ok: true, reason: null, jobId: `cli:${hostname()}` });
  }, 60_000);

  it('says so, and still backs up, when Redis does not answer', async () => {
    const run = await cli(['backup'], { ...env, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stderr).toContain('Note: Redis at REDIS_URL does not answer; this backup cannot tell whether the bot is backing up shop right now.');
    expect(run.stdout).toMatch(/^Backup shop-\d{8}T\d{6}Z(-\d+)? OK/);
  }, 60_000);

  it('treats a Redis that accepts and never replies (stopped, a dead proxy) as not answering, within seconds, for every verb', async () => {
    // What `kill -STOP` on redis-server looks like from here: the connection is accepted, no reply ever comes.
    const sockets: Socket[] = [];
    const hung = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const url = `redis://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    try {
      const withHung = { ...env, REDIS_URL: url };
      const started = Date.now();
      const [backup, check, retention, scrub] = await Promise.all([
        cli(['backup'], withHung),
        cli(['check'], withHung),
        cli(['retention', '--dry-run'], withHung),
        cli(['scrub'], withHung),
      ]);
      // Before: each waited until killed, printing nothing (QA). Bounded now by the CLI's Redis timeout (3 s).
      expect(Date.now() - started).toBeLessThan(45_000);
      expect(backup.exitCode, backup.stderr).toBe(0);
      expect(backup.stderr).toContain('Note: Redis at REDIS_URL does not answer; this backup cannot tell whether the bot is backing up shop right now.');
      expect(check.stdout).toContain('WARNING redis: cannot reach Redis at REDIS_URL; the last backup run and running jobs are unknown');
      expect(check.exitCode).toBeGreaterThan(0);
      expect(retention.stderr).toContain('Redis at REDIS_URL does not answer: restore tests and backups running now are unknown, so a real run would refuse.');
      expect(retention.exitCode).toBe(0);
      expect(scrub.stderr).toContain('Redis at REDIS_URL does not answer: reading without the worker’s memory of what was read when.');
      expect(sockets.length).toBeGreaterThan(0);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hung.close(r));
    }
  }, 60_000);
});
