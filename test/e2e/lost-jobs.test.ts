import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { QUEUE, type BackupJobData, type RestoreJobData, type RestoreTestJobData } from '../../src/jobs/queues.ts';
import { stagingName } from '../../src/postgres/restore/index.ts';
import { LocalStorage } from '../../src/storage/index.ts';
import { runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { databaseUrl } from '../../src/postgres/restore/scratch.ts';
import { channelMessage, slash, startHarness, type Harness } from './harness.ts';

/**
 * A worker that dies mid-job (OOM-killed, host lost) never reaches our processor's catch: BullMQ's stalled-job
 * check marks the job with a deferred failure and the next worker fails it without running it. The job must still
 * be reported like any failure: the channel message, the page, and a pre-migration checklist that says "do not
 * migrate".
 *
 * The dead worker is a real BullMQ worker of this test's own, on the bot's queues, that takes the job and is then
 * closed by force: its lock is no longer renewed, exactly as when its process is killed. The bot's workers start
 * only after it took the job (maxStalledCount 0 here, so the first stall fails the job; production retries once).
 */
let h: Harness | undefined;
let redis: Redis;
let backupDir: string;
const halfWritten = 'shop-20261125T020000Z';
const prefix = `{t-lost-${randomUUID().slice(0, 8)}}`;
/** A database being replaced when its worker died mid-swap: closed to new sessions, this job's staging copy beside it. */
const replaceJob = `lost-replace-${randomUUID().slice(0, 8)}`;
const replaced = `lost_swap_${randomUUID().slice(0, 8)}`;

const requestedBy = { source: 'slack' as const, userId: 'U0ONCALL', userName: 'oncall' };

/** Adds a job and lets a worker of ours take it and die with it, before the bot's workers exist. */
async function loseJob<T>(queueName: string, name: string, data: T, jobId: string): Promise<void> {
  const queue = new Queue<T>(queueName, { connection: redis, prefix });
  const connection = redis.duplicate();
  let taken!: () => void;
  const took = new Promise<void>((resolve) => (taken = resolve));
  const dying = new Worker<T>(
    queueName,
    () => {
      taken();
      return new Promise<never>(() => undefined); // never finishes: the process "dies" below
    },
    // Its own stalled-job check runs once at start and holds off every other worker's for stalledInterval.
    { connection, prefix, lockDuration: 1000, stalledInterval: 500 },
  );
  await (queue as unknown as Queue).add(name, data, { jobId });
  await took;
  await dying.close(true);
  await queue.close();
  connection.disconnect();
}

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  // What the lost backup's attempts left half written, as their job's data records it. No reservation marker here, so
  // the start-up sweep (which judges marked directories by their job) cannot be what removes it: only the job can.
  backupDir = await mkdtemp(join(tmpdir(), 'pgbb-lost-'));
  const storage = new LocalStorage(backupDir);
  await storage.beginBackup('shop', halfWritten);
  const w = await storage.createArtifactWriter('shop', halfWritten, 'database.pgdump.zst');
  w.stream.write('the first megabytes of a dump');
  await loseJob<BackupJobData>(
    QUEUE.backup,
    'backup',
    { target: 'shop', kind: 'manual', label: null, requestedBy, attemptBackupIds: [halfWritten] },
    'lost-backup-1',
  );
  await loseJob<RestoreTestJobData>(
    QUEUE.restoreTest,
    'restore-test',
    {
      target: 'shop',
      backupId: 'shop-20261125T010000Z',
      requestedBy,
      preMigration: {
        label: 'JIRA-42',
        requestedBy,
        backup: { ok: true, backupId: 'shop-20261125T010000Z', jobId: 'pm-backup-1', bytes: 1234, durationMs: 900, retainUntil: null },
      },
    },
    'lost-restore-test-1',
  );
  await loseJob<RestoreJobData>(
    QUEUE.restore,
    'restore',
    {
      target: 'shop',
      backupId: 'shop-20261125T010000Z',
      tables: ['public.orders'],
      schemas: [],
      into: { database: 'shop', create: false },
      requestedBy,
      confirmedBy: 'U0OPS1',
    },
    'lost-restore-1',
  );
  await runSql(inject('pgUrl'), `CREATE DATABASE ${replaced}`);
  await runSql(inject('pgUrl'), `CREATE DATABASE ${stagingName(replaceJob)}`);
  await runSql(inject('pgUrl'), `ALTER DATABASE ${replaced} ALLOW_CONNECTIONS false`);
  await loseJob<RestoreJobData>(
    QUEUE.restore,
    'restore',
    {
      target: 'shop',
      backupId: 'shop-20261125T010000Z',
      tables: [],
      schemas: [],
      into: { database: replaced, create: false },
      requestedBy,
      confirmedBy: 'U0OPS1',
    },
    replaceJob,
  );
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: { QUEUE_PREFIX: prefix, BACKUP_DIR: backupDir },
    workerOptions: { lockDurationMs: 500, maxStalledCount: 0 },
  });
});

afterAll(async () => {
  await h?.stop();
  redis?.disconnect();
  for (const db of [replaced, stagingName(replaceJob)]) await runSql(inject('pgUrl'), `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
  if (backupDir) await rm(backupDir, { recursive: true, force: true });
});

/** A session just ended can stay in pg_stat_activity a moment. */
async function untilNoSessions(db: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const n = await withClient(inject('pgUrl'), async (c) => (await c.query('SELECT 1 FROM pg_stat_activity WHERE datname = $1', [db])).rowCount);
    if (n === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sessions of ${db} did not end`);
}

describe('a job whose worker died', () => {
  it('a lost backup is reported as failed in the channel and pages PagerDuty', async () => {
    const harness = h as Harness;
    const m = await channelMessage(harness, 'lost-backup-1', /Backup of shop FAILED: the worker running it stopped before it finished/, 30_000);
    expect(m.text).toMatch(/BullMQ gave the job up/);
    const page = await harness.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/backup', 30_000);
    expect(page.payload?.severity).toBe('error');
    expect(page.payload?.summary).toMatch(/^Backup of shop failed: the worker running it stopped/);
    expect(page.payload?.custom_details).toMatchObject({ jobId: 'lost-backup-1' });
    // The health check and the daily checklist see the failed run.
    expect((await harness.service.deps.runs.last('shop'))?.ok).toBe(false);
    // And the half-written backup its attempts left is removed, not kept by retention for 24 h.
    const end = Date.now() + 10_000;
    while (existsSync(join(backupDir, 'shop', halfWritten)) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(join(backupDir, 'shop', halfWritten))).toBe(false);
  });

  it('a lost pre-migration restore test still posts its checklist, which says not to migrate', async () => {
    const harness = h as Harness;
    await channelMessage(harness, 'lost-restore-test-1', /could not run/i, 30_000);
    const page = await harness.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/restore-test', 30_000);
    expect(page.payload?.severity).toBe('critical');
    const end = Date.now() + 30_000;
    let checklist: string | undefined;
    while (!checklist && Date.now() < end) {
      checklist = [...harness.slack.messages.values()]
        .map((m) => JSON.stringify(m.blocks ?? ''))
        .find((b) => b.includes('JIRA-42') && b.includes('do not start the migration'));
      if (!checklist) await new Promise((r) => setTimeout(r, 50));
    }
    expect(checklist).toBeDefined();
    expect(checklist).toMatch(/the worker running it stopped before it finished/);
  });

  it('a lost restore into an existing database is recorded as failed, and says the outcome must be checked', async () => {
    const harness = h as Harness;
    const m = await channelMessage(harness, 'lost-restore-1', /Restore into shop FAILED: the worker running it stopped/, 30_000);
    const shown = JSON.stringify(m.blocks);
    expect(shown).toMatch(/holds all of it or none of it: check which before anyone uses it/);
    // Not the usual "left as it was": nobody knows that here.
    expect(shown).not.toMatch(/left as it was/);
    const records = await harness.service.deps.storage.listRecords('restore', 'shop');
    const record = records.find((r) => r.jobId === 'lost-restore-1');
    // Not known to have worked, not known to have failed: null, as for a restore that could not run.
    expect(record?.passed).toBeNull();
    expect(record?.problems[0]).toMatch(/the worker running it stopped before it finished/);
  });

  it('a replacement lost mid-swap opens the database it had closed to new sessions again, and says so', async () => {
    const harness = h as Harness;
    const m = await channelMessage(harness, replaceJob, /FAILED: the worker running it stopped/, 30_000);
    const shown = JSON.stringify(m.blocks);
    expect(shown).toMatch(
      new RegExp(
        `${replaced} refused connections: an earlier attempt of this job was stopped during its swap, after closing ${replaced} to new sessions; it takes connections again`,
      ),
    );
    const allowed = await withClient(
      inject('pgUrl'),
      async (c) => (await c.query('SELECT datallowconn FROM pg_database WHERE datname = $1', [replaced])).rows[0]?.datallowconn,
    );
    expect(allowed).toBe(true);
    // The job's staging copy is named with its size, listed, and droppable once nothing uses it.
    const staging = stagingName(replaceJob);
    expect(shown).toContain(`the backup was being restored beside ${replaced} into ${staging} (`);
    expect(shown).toContain(`${staging} is left on the server; once sure, \`/restore drop ${staging}\` removes it`);
    const listed = (await slash(harness, '/restore', 'list')).text;
    expect(listed).toMatch(
      new RegExp(`\`${staging}\` on .* · left by a replacement of ${replaced} that did not finish \\(never used\\), a copy of \`shop-20261125T010000Z\``),
    );
    // An attempt still restoring into it (a lost lock, not a dead worker) has sessions there: it is not dropped under it.
    const session = new pg.Client({ connectionString: databaseUrl(inject('pgUrl'), staging) });
    await session.connect();
    try {
      expect((await slash(harness, '/restore', `drop ${staging}`)).text).toContain(
        `\`${staging}\` has 1 open session(s): a restore may still be running into it. Nothing was dropped; try again once it ends.`,
      );
    } finally {
      await session.end();
    }
    await untilNoSessions(staging);
    expect((await slash(harness, '/restore', `drop ${staging}`)).text).toMatch(new RegExp(`^Dropped \`${staging}\``));
    const left = await withClient(inject('pgUrl'), async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [staging])).rowCount);
    expect(left).toBe(0);
  });
});
