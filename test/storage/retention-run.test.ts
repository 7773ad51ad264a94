import { randomUUID } from 'node:crypto';
import { memoryScrubState, readBackAndMark, rememberedReadBack } from '../../src/storage/scrub.ts';
import { mkdir, open, readdir, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { backupsInUse } from '../../src/jobs/backups-in-use.ts';
import { cliReadersKey, holdForCli } from '../../src/jobs/cli-readers.ts';
import { holdForReading } from '../../src/cli/cli-hold.ts';
import { createQueues, type Queues } from '../../src/jobs/queues.ts';
import { createLogger } from '../../src/logger.ts';
import { retentionRunReport, retentionSummary, retentionWorthSaying } from '../../src/notifications/retention-messages.ts';
import { BotError } from '../../src/errors.ts';
import { formatInZone } from '../../src/schedules/time.ts';
import { cliRetention } from '../../src/cli/retention-cli.ts';
import { repairClaim, repairLockKey } from '../../src/jobs/redis-lock.ts';
import { cliRetentionKey } from '../../src/checklists/retention-runs.ts';
import { loadConfig } from '../../src/config.ts';
import { makeBackupId, type LocalStorage, type S3Storage, type Storage } from '../../src/storage/index.ts';
import { type RetentionRunOptions, runRetention } from '../../src/storage/retention-run.ts';
import { rawBucket, startS3Server, testS3Storage, type TestS3Server } from '../support/s3-server.ts';
import { tempRoot } from './fixtures.ts';
import { restoreTestRecord, store } from './retention-fixtures.ts';

const log = createLogger({ level: 'silent' });
const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** Sets the mtime of a directory and everything in it, as if nothing had been written there since `at`. */
async function age(dir: string, at: Date): Promise<void> {
  for (const f of await readdir(dir)) await utimes(join(dir, f), at, at);
  await utimes(dir, at, at);
}

const ids = (list: Array<{ backupId: string }>) => list.map((m) => m.backupId).sort();

/** runRetention as the worker runs it: the real read-back, what the queues say is in use, a silent log. */
const retain = (o: Omit<RetentionRunOptions, 'readBack' | 'inUse' | 'log'> & Partial<Pick<RetentionRunOptions, 'inUse' | 'readBack'>>) =>
  runRetention({ readBack: readBackAndMark, inUse: () => backupsInUse(queues), log, ...o });

/** A worker that takes a job of `queue` and keeps it active until closed: a backup or restore running right now. */
function holdJobs(queue: { name: string; opts: { prefix?: string } }): { active: Promise<void>; close(): Promise<void> } {
  let release = () => {};
  const gate = new Promise<void>((r) => (release = r));
  let started = () => {};
  const active = new Promise<void>((r) => (started = r));
  const worker = new Worker(
    queue.name,
    async () => {
      started();
      await gate;
    },
    { connection: redis.duplicate(), prefix: queue.opts.prefix ?? '' },
  );
  return {
    active,
    async close() {
      release();
      await worker.close();
    },
  };
}

let redis: Redis;
let queues: Queues;
let server: TestS3Server;
let n = 0;

beforeAll(async () => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  server = await startS3Server();
});

afterAll(async () => {
  redis?.disconnect();
  await server?.close();
});

beforeEach(() => {
  // A fresh prefix per test: the queues start empty.
  queues = createQueues(redis, `{rt-${randomUUID().slice(0, 8)}}`);
});

afterEach(async () => {
  await queues.close();
});

describe('runRetention on one storage', () => {
  let root: string;
  let local: LocalStorage;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ root, storage: local, cleanup } = await tempRoot());
  });
  afterEach(() => cleanup());

  it('deletes an expired backup artifacts first, manifest last, and keeps the newest good one even when expired (S3)', async () => {
    const s3 = testS3Storage(server, { prefix: `ret${++n}` });
    try {
      const now = new Date();
      const oldest = await store(s3, 'shop', now, 40, 30);
      const newest = await store(s3, 'shop', now, 35, 30);
      const run = await retain({
        primary: s3,
        dryRun: false,
      });
      expect(ids(await s3.list())).toEqual([newest.backupId]);
      const mine = server.events.filter((e) => e.startsWith('ObjectRemoved') && e.includes(`/${oldest.backupId}/`));
      expect(mine.at(-1)).toBe(`ObjectRemoved:Delete ret${n}/shop/${oldest.backupId}/manifest.json`);
      expect(mine.findIndex((e) => e.endsWith('/database.pgdump.zst'))).toBe(0);
      expect(await rawBucket(server).keys(`ret${n}/shop/${oldest.backupId}/`)).toEqual([]);
      expect(retentionRunReport(run).split('\n')).toEqual([
        `Retention on ${s3.describe()}: deleted 1 backup and 0 unfinished or damaged backups; kept 1.`,
        expect.stringMatching(new RegExp(`^• Deleted ${oldest.backupId}: expired .* \\(daily\\)$`)),
        expect.stringMatching(new RegExp(`^• Kept ${newest.backupId}: expired .*, kept: the newest good backup of shop$`)),
      ]);
      expect(retentionSummary(run)).toMatchObject({ dryRun: false, deleted: 1, cleaned: 0, keptPastDeadline: 1, failed: 0 });
    } finally {
      s3.destroy();
    }
  });

  it('keeps an expired backup that a restore test or a restore is reading, or is queued to read', async () => {
    const now = new Date();
    const queued = await store(local, 'shop', now, 50, 30);
    const reading = await store(local, 'shop', now, 45, 30);
    const free = await store(local, 'shop', now, 40, 30);
    const fresh = await store(local, 'shop', now, 1, 30);
    // Queued, no worker: waiting.
    await queues.restoreTest.add('restore-test', { target: 'shop', backupId: queued.backupId, requestedBy: { source: 'slack', userName: 'oncall' } });
    // A selective restore being processed right now.
    const restoring = holdJobs(queues.restore);
    try {
      await queues.restore.add('restore', {
        target: 'shop',
        backupId: reading.backupId,
        tables: ['public.orders'],
        schemas: [],
        into: { database: 'shop_restored', create: true },
        requestedBy: { source: 'slack', userName: 'oncall' },
        confirmedBy: null,
      });
      await restoring.active;
      const run = await retain({
        primary: local,
        dryRun: false,
      });
      expect(ids(await local.list())).toEqual(ids([queued, reading, fresh]));
      const plan = run.storages[0]?.plan;
      expect(plan?.delete.map((d) => d.backupId)).toEqual([free.backupId]);
      expect(plan?.keep.find((k) => k.backupId === queued.backupId)?.reason).toMatch(/kept: a restore test of it is running$/);
      expect(plan?.keep.find((k) => k.backupId === reading.backupId)?.reason).toMatch(/kept: a restore from it is running$/);
    } finally {
      await restoring.close();
    }
  });

  it('keeps an expired backup the CLI’s restore-test holds in Redis, and deletes it once the hold is released (QA)', async () => {
    const now = new Date();
    const held = await store(local, 'shop', now, 50, 30);
    const fresh = await store(local, 'shop', now, 1, 30);
    const prefix = queues.backup.opts.prefix as string;
    const hold = await holdForCli(redis, prefix, held.backupId);
    const withCli = (o: Parameters<typeof retain>[0]) => retain({ ...o, inUse: () => backupsInUse(queues, { redis, prefix }) });
    const kept = await withCli({ primary: local, dryRun: false });
    expect(kept.storages[0]?.plan?.keep.find((k) => k.backupId === held.backupId)?.reason).toMatch(/kept: a restore test of it is running$/);
    expect(ids(await local.list())).toEqual(ids([held, fresh]));
    await hold.release();
    const gone = await withCli({ primary: local, dryRun: false });
    expect(gone.storages[0]?.plan?.delete.map((d) => d.backupId)).toEqual([held.backupId]);
    // A reader that died without releasing is forgotten once its time runs out.
    await redis.hset(cliReadersKey(prefix), 'dead', JSON.stringify({ backupId: fresh.backupId, until: Date.now() - 1 }));
    await redis.hset(cliReadersKey(prefix), 'garbled', '{not json');
    expect((await backupsInUse(queues, { redis, prefix })).restoreTests.has(fresh.backupId)).toBe(false);
    // And removed by the next reader, which leaves a live one's field alone (second reader: the hash only grew).
    const live = await holdForCli(redis, prefix, fresh.backupId);
    const next = await holdForCli(redis, prefix, held.backupId);
    const fields = Object.values(await redis.hgetall(cliReadersKey(prefix))).map((v) => (JSON.parse(v) as { backupId: string }).backupId);
    expect(fields.sort()).toEqual([fresh.backupId, held.backupId].sort());
    await live.release();
    await next.release();
    expect(await redis.hlen(cliReadersKey(prefix))).toBe(0);
  });

  it('the CLI’s restore and restore-test hold their backup through cli-hold.ts, and refuse one deleted before the hold', async () => {
    const now = new Date();
    const held = await store(local, 'shop', now, 50, 30);
    const prefix = queues.backup.opts.prefix as string;
    const said: string[] = [];
    const deps = {
      redisUrl: inject('redisUrl'),
      config: { redisCluster: false, queuePrefix: prefix },
      io: { err: (l: string) => said.push(l) },
      storage: local,
    };
    const hold = await holdForReading(deps, held.backupId, held.retainUntil, 'restore');
    expect(hold).not.toBeNull();
    expect((await backupsInUse(queues, { redis, prefix })).restoreTests.has(held.backupId)).toBe(true);
    await hold?.release();
    expect((await backupsInUse(queues, { redis, prefix })).restoreTests.has(held.backupId)).toBe(false);
    // Deleted between being chosen and being held: said, and nothing held.
    await local.deleteBackup('shop', held.backupId);
    await expect(holdForReading(deps, held.backupId, held.retainUntil, 'test')).rejects.toThrow(
      `Backup ${held.backupId} was deleted (by retention?) just before the test could hold it; nothing was done.`,
    );
    expect(await redis.hlen(cliReadersKey(prefix))).toBe(0);
    // Without Redis, a backup retention may delete soon is said to be unheld.
    expect(await holdForReading({ ...deps, redisUrl: null }, held.backupId, new Date(Date.now() - 1000).toISOString(), 'restore')).toBeNull();
    expect(said.join('\n')).toContain(
      `note: no REDIS_URL: a retention run meanwhile cannot see this restore, and may delete ${held.backupId} if it is past its deadline.`,
    );
  });

  it('cleans directories untouched for over a day (no manifest, or a half-done delete), keeps younger ones and a running backup’s', async () => {
    const realNow = new Date();
    // Retention runs 31½ h from now; everything below is dated from there.
    const now = new Date(realNow.getTime() + 31.5 * HOUR);
    const keep = await store(local, 'shop', now, 1, 30);
    const stuck = makeBackupId('shop', new Date(realNow.getTime() - 2 * HOUR));
    await local.beginBackup('shop', stuck);
    await writeFile(join(root, 'shop', stuck, 'database.pgdump.zst.partial'), 'half a dump');
    const young = makeBackupId('shop', new Date(realNow.getTime() - 3 * HOUR));
    await local.beginBackup('shop', young);
    await writeFile(join(root, 'shop', young, 'database.pgdump.zst.partial'), 'still growing');
    // The directory's own mtime stops when its .partial file is created; the file keeps growing while pg_dump runs.
    await age(join(root, 'shop', young), new Date(now.getTime() - 40 * HOUR));
    const growing = new Date(now.getTime() - 11 * HOUR);
    await utimes(join(root, 'shop', young, 'database.pgdump.zst.partial'), growing, growing);
    // Manifest left, artifact gone: a delete interrupted between the two.
    const halfDeleted = await store(local, 'shop', now, 60, 30);
    await rm(join(root, 'shop', halfDeleted.backupId, 'database.pgdump.zst'));
    // Past its deadline too, an artifact cut short: damaged, and retention's to delete.
    const cutShort = await store(local, 'shop', now, 50, 30);
    await truncate(join(root, 'shop', cutShort.backupId, 'database.pgdump.zst'), 3);
    // Within its deadline, a file lost (not to retention, which deletes only past it): damage, kept and named.
    const lostFile = await store(local, 'shop', now, 3, 30);
    await rm(join(root, 'shop', lostFile.backupId, 'database.pgdump.zst'));
    await age(join(root, 'shop', lostFile.backupId), new Date(now.getTime() - 40 * HOUR));
    // A backup job of shop is running: a directory named after its start may be its own.
    await queues.backup.add('backup', { target: 'shop', kind: 'scheduled', label: null, requestedBy: { source: 'schedule' } });
    const running = makeBackupId('shop', realNow);
    await local.beginBackup('shop', running);
    const backingUp = holdJobs(queues.backup);
    // Never backups: the records and the audit trail.
    await local.writeRecord(restoreTestRecord(keep.backupId, true, realNow));
    await mkdir(join(root, '_audit'));
    await writeFile(join(root, '_audit', 'audit.jsonl'), '{}\n');
    try {
      await backingUp.active;
      const run = await retain({
        primary: local,
        dryRun: false,
        now: () => now,
      });
      expect(run.storages[0]?.plan?.cleanUnfinished.map((u) => `${u.backupId}: ${u.reason}`).sort()).toEqual(
        [
          `${stuck}: unfinished (no manifest), last written 31 h ago`,
          `${halfDeleted.backupId}: half-deleted (manifest left, an artifact gone or cut short), past its deadline (${formatInZone(new Date(halfDeleted.retainUntil ?? 0), 'UTC')})`,
          `${cutShort.backupId}: half-deleted (manifest left, an artifact gone or cut short), past its deadline (${formatInZone(new Date(cutShort.retainUntil ?? 0), 'UTC')})`,
        ].sort(),
      );
      expect(run.storages[0]?.plan?.damaged).toEqual([
        {
          target: 'shop',
          backupId: lostFile.backupId,
          reason: 'damaged (artifact database.pgdump.zst is missing): not deleted; look at it, then delete it by hand',
        },
      ]);
      expect(retentionRunReport(run)).toContain(`• Kept ${lostFile.backupId}: damaged (artifact database.pgdump.zst is missing`);
      expect((await readdir(join(root, 'shop'))).sort()).toEqual(['_records', keep.backupId, running, young, lostFile.backupId].sort());
      expect(await readdir(join(root, '_audit'))).toEqual(['audit.jsonl']);
      expect(await local.listRecords('restore-test')).toHaveLength(1);
      expect(run.storages[0]?.outcomes.every((o) => o.error === null)).toBe(true);
    } finally {
      await backingUp.close();
    }
  });

  it('a dry run deletes nothing and reports what it would delete', async () => {
    const now = new Date(Date.now() + 25.5 * HOUR);
    const old = await store(local, 'shop', now, 40, 30);
    const fresh = await store(local, 'shop', now, 2, 30);
    const stuck = makeBackupId('shop', new Date());
    await local.beginBackup('shop', stuck);
    const before = (await readdir(join(root, 'shop'))).sort();
    const run = await retain({
      primary: local,
      dryRun: true,
      now: () => now,
    });
    expect((await readdir(join(root, 'shop'))).sort()).toEqual(before);
    expect(ids(await local.list())).toEqual(ids([old, fresh]));
    expect(run.storages[0]?.outcomes).toEqual([]);
    expect(retentionRunReport(run).split('\n')).toEqual([
      `Retention on ${local.describe()} (dry run, nothing deleted): would delete 1 backup and 1 unfinished or damaged backup; kept 1.`,
      expect.stringMatching(new RegExp(`^• Would delete ${old.backupId}: expired`)),
      `• Would delete ${stuck}: unfinished (no manifest), last written 25 h ago`,
    ]);
  });

  it('a backup whose latest restore test failed is not the newest good one', async () => {
    const now = new Date();
    const good = await store(local, 'shop', now, 40, 30);
    const bad = await store(local, 'shop', now, 35, 30);
    await local.writeRecord(restoreTestRecord(bad.backupId, true, new Date(now.getTime() - 34 * DAY)));
    await local.writeRecord(restoreTestRecord(bad.backupId, false, new Date(now.getTime() - 33 * DAY)));
    const run = await retain({
      primary: local,
      dryRun: false,
    });
    expect(ids(await local.list())).toEqual([good.backupId]);
    expect(run.storages[0]?.plan?.keep[0]?.reason).toMatch(/kept: the newest good backup of shop$/);
  });

  it('a backup the checksum scrub marked damaged is kept and named within its deadline; past it, named, kept while just marked, read or mended, then deleted (QA)', async () => {
    const now = new Date();
    const fresh = await store(local, 'shop', now, 1, 30);
    const kept = await store(local, 'shop', now, 5, 30);
    const expired = await store(local, 'shop', now, 40, 30);
    await local.markDamaged('shop', kept.backupId, 'the checksum scrub found artifact corrupted: database.pgdump.zst', now);
    // Marked just now, past its deadline: it used to wait a day after the marker, named by no listing in between.
    await local.markDamaged('shop', expired.backupId, 'the checksum scrub found artifact corrupted: database.pgdump.zst', now);
    await local.list();
    const deadline = (await local.readManifest('shop', expired.backupId)).retainUntil;
    expect(local.damaged().map((d) => [d.backupId, d.expired])).toEqual([
      [kept.backupId, undefined],
      [expired.backupId, deadline],
    ]);
    // Marked within the hour (by this very run's read-back, it may be): kept, and said, never deleted unseen.
    const marked = await retain({ primary: local, dryRun: false, now: () => now });
    expect(retentionRunReport(marked)).toMatch(
      new RegExp(
        `Kept ${expired.backupId}: expired .* \\(marked damaged\\), kept: written to within the hour \\(a repair, or its mark just made\\); the next run deletes it`,
      ),
    );
    await age(join(local.root, 'shop', expired.backupId), new Date(now.getTime() - 2 * HOUR));
    // A restore reading it (one whose roles file alone is damaged can be restored), or a repair rewriting it: kept.
    const reading = await retain({
      primary: local,
      dryRun: false,
      now: () => now,
      inUse: async () => ({ ...(await backupsInUse(queues)), restores: new Set([expired.backupId]) }),
    });
    expect(retentionRunReport(reading)).toMatch(new RegExp(`Kept ${expired.backupId}: .*kept: a restore of it is running`));
    // A repair holding it (the scrub's claim, jobs/redis-lock.ts): kept; retention takes the same claim while it deletes.
    const prefix = `{rp-${randomUUID().slice(0, 8)}}`;
    const repair = await repairClaim(redis, prefix, 'cli:host:1:scrub')('shop', expired.backupId);
    const claimRepair = repairClaim(redis, prefix, 'worker:host:2');
    const mending = await retain({ primary: local, dryRun: false, now: () => now, claimRepair });
    expect(retentionRunReport(mending)).toMatch(
      new RegExp(`Kept ${expired.backupId}: .*kept: a repair holds it \\(another repair \\(cli:host:1:scrub\\) is rewriting it now`),
    );
    if (typeof repair !== 'string') await repair.release();
    const dry = await retain({ primary: local, dryRun: true, now: () => now });
    expect(retentionRunReport(dry)).toMatch(new RegExp(`Would delete ${expired.backupId}: marked damaged, past its deadline \\(`));
    const run = await retain({ primary: local, dryRun: false, now: () => now, claimRepair });
    expect(ids(await local.list())).toEqual([fresh.backupId]);
    // The claim it held while deleting is released.
    expect(await redis.exists(repairLockKey(prefix, 'shop', expired.backupId))).toBe(0);
    expect((local.damaged() ?? []).map((d) => d.backupId)).toEqual([kept.backupId]);
    const report = retentionRunReport(run);
    expect(report).toMatch(
      new RegExp(
        `Kept ${kept.backupId}: damaged \\(the checksum scrub found artifact corrupted: database\\.pgdump\\.zst; marked \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC\\): kept until its retention deadline, then deleted \\(`,
        'm',
      ),
    );
    expect(report).toMatch(new RegExp(`Deleted ${expired.backupId}: marked damaged, past its deadline`));
    expect(await readdir(join(local.root, 'shop'))).not.toContain(expired.backupId);
  });

  it('reads back the backup it keeps as newest good before deleting: newer ones rotted unseen are marked, and the last good one is kept (QA)', async () => {
    const now = new Date();
    const good = await store(local, 'shop', now, 35, 30);
    const rotted = [await store(local, 'shop', now, 1.25, 30), await store(local, 'shop', now, 1, 30), await store(local, 'shop', now, 0.25, 30)];
    for (const m of rotted) {
      // One byte changed in place, same size: every listing still finds the file with its size.
      const fh = await open(join(root, 'shop', m.backupId, 'database.pgdump.zst'), 'r+');
      const byte = Buffer.alloc(1);
      await fh.read(byte, 0, 1, 10);
      await fh.write(Buffer.from([(byte[0] ?? 0) ^ 0xff]), 0, 1, 10);
      await fh.close();
    }
    expect(ids(await local.list())).toEqual(ids([good, ...rotted]));
    const dry = await retain({ primary: local, dryRun: true });
    // A dry run reads nothing: it plans on what the listing says.
    expect(dry.storages[0]?.plan?.delete.map((d) => d.backupId)).toEqual([good.backupId]);

    // Each read is recorded in the scrub's memory, so the scrub after retention reads other backups first.
    const scrub = memoryScrubState();
    const run = await retain({ primary: local, dryRun: false, readBack: rememberedReadBack(() => scrub) });
    expect([...scrub.seen.keys()].sort()).toEqual([good, ...rotted].map((m) => `shop/${m.backupId}`).sort());
    const plan = run.storages[0]?.plan;
    expect(plan?.delete).toEqual([]);
    expect(run.storages[0]?.outcomes).toEqual([]);
    expect(plan?.keep.find((k) => k.backupId === good.backupId)?.reason).toMatch(/kept: the newest good backup of shop$/);
    // The three are marked: no listing offers them, and the report names each with what was found.
    expect(ids(await local.list())).toEqual([good.backupId]);
    expect(plan?.damaged.map((d) => d.backupId).sort()).toEqual(ids(rotted));
    expect(plan?.damaged[0]?.reason).toMatch(/retention, reading back the backup it keeps found artifact corrupted: database\.pgdump\.zst/);
  });

  it('holds a target’s deletions when the backup it keeps cannot be read back, and says so (second reader)', async () => {
    const now = new Date();
    const old = await store(local, 'shop', now, 40, 30);
    const kept = await store(local, 'shop', now, 1, 30);
    // The kept backup's files answer every listing, but not a read (a copy moved to an archive tier, an EIO).
    const unreadable = new Proxy(local, {
      get(target, prop) {
        if (prop === 'openArtifact')
          return async (t: string, id: string, f: string) => {
            if (id === kept.backupId) throw Object.assign(new Error(`EIO: i/o error, open '${f}'`), { code: 'EIO' });
            return target.openArtifact(t, id, f);
          };
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Storage;
    const run = await retain({ primary: unreadable, dryRun: false });
    const plan = run.storages[0]?.plan;
    expect(plan?.delete).toEqual([]);
    expect(ids(await local.list())).toEqual(ids([old, kept]));
    expect(plan?.held).toEqual([
      expect.stringMatching(new RegExp(`^shop: nothing deleted, since ${kept.backupId}, the backup kept as its newest good one, could not be read back \\(`)),
    ]);
    const summary = retentionSummary(run);
    expect(retentionWorthSaying(summary)).toBe(true);
    expect(retentionRunReport(run)).toMatch(/• Held for shop: nothing deleted, since /);
  });

  it('stopped by its signal between two deletions: the one under way finishes, the rest is not tried, and no report calls it done', async () => {
    const now = new Date();
    await store(local, 'shop', now, 1, 30);
    const expired = await Promise.all([40, 41, 42].map((days) => store(local, 'shop', now, days, 30)));
    const stop = new AbortController();
    const run = await retain({
      primary: local,
      dryRun: false,
      now: () => now,
      signal: stop.signal,
      // Ctrl-C while the first deletion is under way.
      onOutcome: async () => stop.abort(),
    });
    expect(run.canceled).toBe(true);
    const left = ids(await local.list());
    expect(left).toHaveLength(3);
    const gone = expired.filter((m) => !left.includes(m.backupId)).map((m) => m.backupId);
    expect(gone).toHaveLength(1);
    expect(run.storages[0]?.plan?.delete.map((d) => d.backupId)).toEqual(gone);
    expect(retentionSummary(run)).toMatchObject({ deleted: 1, failed: 0 });
    expect(retentionRunReport(run).split('\n')[0]).toMatch(/: deleted 1 backup and 0 unfinished or damaged backups; kept 1\.$/);
  });

  it('the CLI’s retention canceled says so and exits non-zero; it is not recorded, neither as retention applied nor as failing', async () => {
    const now = new Date();
    await store(local, 'shop', now, 1, 30);
    const old = await store(local, 'shop', now, 40, 30);
    const prefix = `{rtc-${randomUUID().slice(0, 8)}}`;
    const out: string[] = [];
    const err: string[] = [];
    const stop = new AbortController();
    stop.abort();
    const code = await cliRetention([], {
      config: { ...loadConfig({ BACKUP_DIR: local.root, QUEUE_PREFIX: prefix }, 'offline') },
      redisUrl: inject('redisUrl'),
      primary: local,
      copies: [],
      log,
      io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), tty: false },
      signal: stop.signal,
    });
    expect(code).toBe(1);
    expect(err).toContain('Retention canceled: 0 deletions done, the rest not tried (the next run does it); nothing is left half-deleted.');
    expect(ids(await local.list())).toContain(old.backupId);
    expect(await redis.get(cliRetentionKey(prefix))).toBeNull();
  });

  it('a delete that fails is reported, and the others still go', async () => {
    const now = new Date();
    const a = await store(local, 'shop', now, 50, 30);
    const b = await store(local, 'shop', now, 45, 30);
    const c = await store(local, 'shop', now, 1, 30);
    // A small fake of our own interface: the local storage, except that one delete fails the way a disk does.
    const deleteBackup = (target: string, id: string) =>
      id === a.backupId
        ? Promise.reject(new BotError('storage_failed', `Could not delete backup ${id} in ${local.describe()} (EIO).`))
        : local.deleteBackup(target, id);
    const flaky = new Proxy(local, {
      get: (t, key) => (key === 'deleteBackup' ? deleteBackup : typeof Reflect.get(t, key) === 'function' ? Reflect.get(t, key).bind(t) : Reflect.get(t, key)),
    }) as Storage;
    const seen: string[] = [];
    const run = await retain({
      primary: flaky,
      dryRun: false,
      onOutcome: async (o) => void seen.push(`${o.backupId} ${o.error ?? 'deleted'}`),
    });
    expect(ids(await local.list())).toEqual(ids([a, c]));
    expect(seen).toEqual([`${a.backupId} Could not delete backup ${a.backupId} in ${local.describe()} (EIO).`, `${b.backupId} deleted`]);
    expect(retentionSummary(run)).toMatchObject({ deleted: 1, failed: 1 });
    const report = retentionRunReport(run).split('\n');
    expect(report[0]).toBe(`Retention on ${local.describe()}: deleted 1 backup and 0 unfinished or damaged backups; kept 1. 1 could NOT be deleted.`);
    expect(report[1]).toMatch(
      new RegExp(`^• Could NOT delete ${a.backupId} \\(expired .*\\): Could not delete backup ${a.backupId} in local:.* \\(EIO\\)\\.$`),
    );
    expect(report[2]).toMatch(new RegExp(`^• Deleted ${b.backupId}: expired`));
  });
});

describe('runRetention with copies', () => {
  let local: LocalStorage;
  let cleanup: () => Promise<void>;
  let copy: S3Storage;
  beforeEach(async () => {
    ({ storage: local, cleanup } = await tempRoot());
    copy = testS3Storage(server, { prefix: `copy${++n}` });
  });
  afterEach(async () => {
    copy.destroy();
    await cleanup();
  });

  it('cleans every copy on its own contents: a backup the primary has lost is deleted there too, the copy keeps its own newest', async () => {
    const now = new Date();
    const lost = await store(copy, 'shop', now, 60, 30); // only on the copy
    const a = await store(local, 'shop', now, 40, 30);
    await store(copy, 'shop', now, 40, 30);
    const b = await store(local, 'shop', now, 2, 30);
    await store(copy, 'shop', now, 2, 30);
    const run = await retain({
      primary: local,
      copies: [copy],
      dryRun: false,
    });
    expect(ids(await local.list())).toEqual([b.backupId]);
    expect(ids(await copy.list())).toEqual([b.backupId]);
    expect(run.storages.map((s) => [s.role, s.storage, ids(s.plan?.delete ?? [])])).toEqual([
      ['primary', local.describe(), [a.backupId]],
      ['copy', copy.describe(), ids([lost, a])],
    ]);
    expect(retentionRunReport(run)).toContain(`Retention on ${copy.describe()} (copy): deleted 2 backups`);
  });

  it('a copy that cannot be read is reported, and the primary is still cleaned', async () => {
    const now = new Date();
    await store(local, 'shop', now, 40, 30);
    const b = await store(local, 'shop', now, 2, 30);
    const gone = testS3Storage(server, { bucket: 'no-such-bucket', maxAttempts: 1 });
    try {
      const run = await retain({
        primary: local,
        copies: [gone],
        dryRun: false,
      });
      expect(ids(await local.list())).toEqual([b.backupId]);
      expect(retentionSummary(run)).toMatchObject({ deleted: 1, unreadable: [gone.describe()] });
      expect(retentionRunReport(run).split('\n').at(-1)).toMatch(
        /^Retention on s3:\/\/no-such-bucket\/pgbb \(copy\): could not read it, nothing deleted there: /,
      );
    } finally {
      gone.destroy();
    }
  });
});
