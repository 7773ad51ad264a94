import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { Worker } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { backupEnqueuer } from '../../src/jobs/producers.ts';
import { createQueues, QUEUE, type BackupJobData, type Queues } from '../../src/jobs/queues.ts';
import { LocalStorage } from '../../src/storage/index.ts';
import type { BackupOwner } from '../../src/storage/types.ts';
import { stallOptions } from '../../src/workers/stall-settings.ts';
import { makeManifest } from '../fixtures/backups.ts';
import { createTestDatabase } from '../support/databases.ts';
import { startSlackServer, type SlackServer } from '../support/slack-server.ts';
import { BOT_TOKEN, channelMessage, loadSampleSchema } from './harness.ts';

/**
 * A worker process killed (SIGKILL to its process group) while its pg_dump runs: the bot's own `worker` process, as a
 * deployer runs it, with BullMQ's production lock settings. pg_dump is held mid-dump by a table lock a test session
 * takes first, so the kill lands while pg_dump, zstd and the `.partial` file are all live, on any machine's speed.
 * A supervisor then starts the worker again: it must leave the dead attempt's directory to the retry (its job is
 * still active), remove leftovers of jobs that are not, and the retry must remove the dead attempt's directory.
 */
const requestedBy = { source: 'slack' as const, userId: 'U0ONCALL', userName: 'oncall' };
const prefix = `{t-kill-${randomUUID().slice(0, 8)}}`;
const output: string[] = [];
let slack: SlackServer;
let source: Awaited<ReturnType<typeof createTestDatabase>>;
let dir: string;
let env: Record<string, string>;
let redis: Redis;
let queues: Queues;
const children: WorkerProcess[] = [];
let holder: Worker<BackupJobData, unknown> | undefined;

/** `pg-backup-bot worker` in its own process group (so the group can be killed, as a supervisor would). */
const spawnWorker = () => execa('node', ['bin/pg-backup-bot.js', 'worker'], { env, detached: true, reject: false, all: true, buffer: false });
type WorkerProcess = ReturnType<typeof spawnWorker>;
function startWorkerProcess(): WorkerProcess {
  const child = spawnWorker();
  child.all.on('data', (c: Buffer) => output.push(...c.toString().split('\n').filter(Boolean)));
  children.push(child);
  return child;
}

async function until<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; worker output:\n${output.slice(-40).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const shopDir = () => join(dir, 'backups', 'shop');
const backupDirs = async () => (await readdir(shopDir()).catch(() => [] as string[])).sort();

/** A backup reserved in `owner`'s name, as a worker reserves it; finished (manifest written) when given its start. */
async function plant(storage: LocalStorage, backupId: string, owner: BackupOwner | undefined, finishedStartedAt?: string): Promise<void> {
  await storage.beginBackup('shop', backupId, owner);
  const w = await storage.createArtifactWriter('shop', backupId, 'database.pgdump.zst');
  w.stream.end('dump');
  await finished(w.stream);
  if (!finishedStartedAt) return; // left as `database.pgdump.zst.partial`, as a killed worker leaves it
  await w.commit();
  const m = makeManifest({
    target: 'shop',
    startedAt: finishedStartedAt,
    artifacts: [{ bytes: 4, sha256: createHash('sha256').update('dump').digest('hex') }],
  });
  expect(m.backupId).toBe(backupId);
  await storage.writeManifest(m);
}

/** The worker's log lines (pino JSON), skipping anything else it printed (Node's warnings). */
function logLines(): Array<{ msg?: string; removed?: string[] }> {
  return output.flatMap((l) => {
    try {
      return [JSON.parse(l) as { msg?: string; removed?: string[] }];
    } catch {
      return [];
    }
  });
}

beforeAll(async () => {
  slack = await startSlackServer({ botToken: BOT_TOKEN, channels: { incidents: 'C0INCIDENTS' } });
  source = await createTestDatabase(inject('pgUrl'), 'kill');
  await loadSampleSchema(source.url);
  dir = await mkdtemp(join(tmpdir(), 'pgbb-kill-'));
  const keys = await generateKeyPair();
  env = {
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_API_URL: slack.url,
    SLACK_CHANNEL: '#incidents',
    REDIS_URL: inject('redisUrl'),
    QUEUE_PREFIX: prefix,
    DATABASE_URL: source.url,
    TARGET_NAME: 'shop',
    BACKUP_DIR: join(dir, 'backups'),
    BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
    LOG_LEVEL: 'info',
  };
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  queues = createQueues(redis, prefix);
});

afterAll(async () => {
  // Whatever is still running after a failure: the whole group, pg_dump included.
  for (const c of children) if (c.pid && c.exitCode === null && c.signalCode === null) process.kill(-c.pid, 'SIGKILL');
  await Promise.allSettled(children);
  await holder?.close(true);
  await queues?.close();
  redis?.disconnect();
  await Promise.allSettled([slack?.close(), source?.drop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a worker killed mid-dump', () => {
  it('leaves nothing behind: the retry removes the dead attempt, a starting worker removes leftovers of jobs no longer running', async () => {
    const locker = new pg.Client({ connectionString: source.url });
    locker.on('error', () => undefined); // dropped with the database if the test fails before its ROLLBACK
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE shop.orders IN ACCESS EXCLUSIVE MODE');
    const watcher = new pg.Client({ connectionString: source.url });
    watcher.on('error', () => undefined);
    await watcher.connect();
    const first = startWorkerProcess();
    const { jobId } = await backupEnqueuer(queues.backup)({ target: 'shop', kind: 'manual', label: null, requestedBy });

    // Recorded before the dump starts: in the job's data and in the directory's own marker, while pg_dump waits.
    const dead = await until('the backup id in the job data', async () => (await queues.backup.getJob(jobId))?.data.attemptBackupIds?.[0]);
    await until('pg_dump running', async () => {
      // Not from the locking session: inside a transaction pg_stat_activity is a snapshot taken once.
      // pg_dump takes ACCESS SHARE locks on every table it dumps, first of all (its connection carries our app name).
      const r = await watcher.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'LOCK TABLE % IN ACCESS SHARE MODE' AND wait_event_type = 'Lock'");
      return (r.rowCount ?? 0) > 0 && (await readdir(join(shopDir(), dead))).some((f) => f.endsWith('.partial'));
    });
    const marker = JSON.parse(await readFile(join(shopDir(), dead, '.reserved'), 'utf8')) as { owner: BackupOwner };
    expect(marker.owner).toEqual({ queue: `${prefix}:${QUEUE.backup}`, jobId });

    if (!first.pid) throw new Error('the worker has no pid');
    process.kill(-first.pid, 'SIGKILL');
    const killedAt = Date.now();
    expect((await first).signal).toBe('SIGKILL');
    await locker.query('ROLLBACK');
    await Promise.all([locker.end(), watcher.end()]);

    // Leftovers in the storage while no worker runs; one belongs to a job another host is running right now.
    const storage = new LocalStorage(join(dir, 'backups'));
    const ours = (id: string) => ({ queue: `${prefix}:${QUEUE.backup}`, jobId: id });
    const held = 'held-backup-1';
    await queues.backup.add('backup', { target: 'shop', kind: 'manual', label: null, requestedBy } satisfies BackupJobData, { jobId: held });
    let taken!: () => void;
    const took = new Promise<void>((r) => (taken = r));
    holder = new Worker<BackupJobData, unknown>(
      QUEUE.backup,
      () => {
        taken();
        return new Promise<unknown>(() => undefined);
      },
      { connection: redis.duplicate(), prefix, ...stallOptions({}) },
    );
    await took;
    const planted = {
      gone: 'shop-20260101T000001Z', // its job is not in Redis any more: removed
      running: 'shop-20260101T000002Z', // its job is active on another worker: kept
      finished: 'shop-20260101T000003Z', // has a manifest: a backup, never touched
      nobody: 'shop-20260101T000004Z', // names no job (the CLI, an older version): retention's, after 24 h
      elsewhere: 'shop-20260101T000005Z', // another deployment's queue sharing the disk: not ours to judge
    };
    await plant(storage, planted.gone, ours('backup-shop-gone'));
    await plant(storage, planted.running, ours(held));
    await plant(storage, planted.finished, ours('backup-shop-gone'), '2026-01-01T00:00:03Z');
    await plant(storage, planted.nobody, undefined);
    await plant(storage, planted.elsewhere, { queue: '{other}:backup', jobId: 'backup-shop-gone' });

    // The supervisor starts the worker again.
    const second = startWorkerProcess();
    const sweep = await until('the start-up sweep', async () =>
      logLines().find((l) => l.msg === 'removed unfinished backups left by jobs that are no longer running'),
    );
    expect(sweep.removed).toContain(planted.gone);
    for (const kept of [planted.running, planted.finished, planted.nobody, planted.elsewhere]) expect(sweep.removed).not.toContain(kept);

    // The retry: taken over from the dead worker, it removes the dead attempt's directory before dumping again.
    const job = await until('the retried backup to finish', async () =>
      (await queues.backup.getJobState(jobId)) === 'completed' ? queues.backup.getJob(jobId) : undefined,
    );
    const retriedAfterMs = (job?.processedOn ?? 0) - killedAt;
    console.info(`killed backup retried ${(retriedAfterMs / 1000).toFixed(1)} s after the kill`);
    // With BullMQ's defaults (30 s lock, 30 s check) this took 60 s here; with ours (stall-settings.ts) 9–12 s.
    expect(retriedAfterMs).toBeLessThan(20_000);
    const { backupId } = (job?.returnvalue ?? {}) as { backupId?: string };
    expect(backupId).not.toBe(dead);
    expect(job?.data.attemptBackupIds).toEqual([backupId]);
    expect((await storage.list('shop')).map((m) => m.backupId)).toEqual([backupId, planted.finished]);
    expect(await backupDirs()).toEqual([backupId, planted.running, planted.finished, planted.nobody, planted.elsewhere].sort());
    expect(output.some((l) => l.includes(dead) && l.includes('removed the unfinished backup of an earlier attempt'))).toBe(true);
    await channelMessage({ slack }, jobId, /succeeded/, 10_000);

    second.kill('SIGTERM');
    expect((await second).exitCode).toBe(0);
  }, 180_000);
});
