import { randomUUID } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createAuditLog } from '../../src/audit.ts';
import { retentionRunsFromQueue } from '../../src/checklists/retention-runs.ts';
import { runVerifiers, type VerifierContext } from '../../src/checklists/verifiers.ts';
import { defaultTarget, type TargetConfig } from '../../src/config.ts';
import { createRunLog } from '../../src/health/last-runs.ts';
import { runBackup } from '../../src/postgres/backup/index.ts';
import { configWith, recordingNotifier, shop } from '../support/checklist-kit.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import type { LocalStorage } from '../../src/storage/index.ts';
import { retentionProcessor } from '../../src/workers/retention-worker.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { backupOptions, silentLog } from '../support/postgres-helpers.ts';
import { tempRoot } from '../storage/fixtures.ts';
import { restoreTestRecord, store } from '../storage/retention-fixtures.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { makeBackupId } from '../../src/storage/index.ts';

/** 09:00 UTC on a Wednesday in November: 10:00 in Paris (UTC+01:00), when the morning checklist is read. */
const NOW = new Date('2026-11-18T09:00:00Z');
const HOUR = 3600_000;
const DAY = 24 * HOUR;

let redis: Redis;
beforeAll(() => {
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
});
afterAll(async () => {
  await redis.quit();
});

describe('the scheduled checklists’ checks on real storage', () => {
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  let prefix: string;
  let backups: Manifest[];
  let expired: Manifest;
  const ctx = (over: Partial<VerifierContext> = {}): VerifierContext => ({
    config: configWith([shop]),
    storage,
    runs: createRunLog(redis, prefix),
    retention: null,
    log: silentLog,
    now: NOW,
    ...over,
  });

  beforeEach(async () => {
    ({ storage, cleanup } = await tempRoot());
    prefix = `{cl-${randomUUID().slice(0, 8)}}`;
    // A daily backup at 01:00 UTC (02:00 in Paris) for a week, and one from 40 days ago that is past its deadline.
    backups = [];
    for (let day = 0; day < 7; day++) backups.push(await store(storage, 'shop', new Date(NOW.getTime() - 8 * HOUR - day * DAY), 0, 30));
    expired = await store(storage, 'shop', NOW, 40, 30);
    return cleanup;
  });

  it('daily: the 02:00 backup ran with its size against the 7-day median, sizes normal, disk free', async () => {
    const newest = backups[0] as Manifest;
    await createRunLog(redis, prefix).record('shop', { ok: true, at: new Date(Date.parse(newest.finishedAt)), reason: null, jobId: 'backup-shop-1' });
    const r = await runVerifiers(['backup-ran', 'size-normal', 'disk-space'], ctx());
    const size = `${newest.artifacts[0]?.bytes} B`; // every fixture backup has the same size
    expect(r['backup-ran']).toEqual({ ok: true, evidence: `02:00 backup ${newest.backupId}: ${size}, +0 % vs 7-day median (${size})` });
    expect(r['size-normal']).toEqual({ ok: true, evidence: `${size}, +0 % vs median ${size} of the previous 7` });
    expect(r['disk-space']).toMatchObject({ ok: true, evidence: expect.stringMatching(/^\d+ % free \(.+ of .+\), limit 0 %$/) });
  });

  it('daily: "disk has room" fails after a backup ran out of space, though the disk looks roomy again', async () => {
    const reason = 'The backup disk is full (local:/backups); free space or delete old backups, then run the backup again.';
    await createRunLog(redis, prefix).record('shop', { ok: false, at: new Date(NOW.getTime() - HOUR), reason, jobId: 'backup-shop-2' });
    const r = await runVerifiers(['disk-space'], ctx());
    expect(r['disk-space']).toEqual({
      ok: false,
      evidence: expect.stringMatching(
        /^\d+ % free \(.+ of .+\), limit 0 %; shop is short of space: the last backup ran out of space at .* and none has succeeded since$/,
      ),
    });
  });

  it('daily: a run that failed after the newest backup fails "backup ran", with the reason', async () => {
    await createRunLog(redis, prefix).record('shop', {
      ok: false,
      at: new Date(NOW.getTime() - HOUR),
      reason: 'pg_dump: connection refused',
      jobId: 'backup-shop-2',
    });
    const r = await runVerifiers(['backup-ran'], ctx());
    expect(r['backup-ran']).toMatchObject({
      ok: false,
      evidence: expect.stringMatching(/^last run FAILED at 09:00: pg_dump: connection refused; newest good: 02:00 backup/),
    });
  });

  it('daily: a pre-migration backup taken during the day does not stand in for a missed night', async () => {
    const empty = await tempRoot();
    try {
      await store(empty.storage, 'shop', new Date(NOW.getTime() - 8 * HOUR - 2 * DAY), 0, 30);
      const at = new Date(NOW.getTime() - 2 * HOUR);
      const pre = await storeBackup(empty.storage, 'shop', makeBackupId('shop', at), at.toISOString(), undefined, {
        kind: 'pre-migration',
        retentionClass: 'pre-migration',
        label: 'JIRA-1',
      });
      const r = await runVerifiers(['backup-ran'], ctx({ storage: empty.storage }));
      expect(r['backup-ran']).toMatchObject({
        ok: false,
        evidence: expect.stringMatching(/^the newest daily backup is 56 h 0 min old, over 25 h: .*; a pre-migration backup since does not count$/),
      });
      expect(pre.kind).toBe('pre-migration');
    } finally {
      await empty.cleanup();
    }
  });

  it('daily: the 6-hourly backups do not stand in for the nightly ones that stopped (QA)', async () => {
    const empty = await tempRoot();
    try {
      // The last 02:00 (daily) backup three nights ago; the 6-hourly ones went on until two hours ago.
      await store(empty.storage, 'shop', new Date(NOW.getTime() - 8 * HOUR - 2 * DAY), 0, 30);
      for (const hours of [20, 14, 8, 2]) {
        const at = new Date(NOW.getTime() - hours * HOUR);
        await storeBackup(empty.storage, 'shop', makeBackupId('shop', at), at.toISOString(), undefined, {
          kind: 'scheduled',
          retentionClass: 'frequent',
          retainUntil: new Date(at.getTime() + 7 * DAY).toISOString(),
        });
      }
      const r = await runVerifiers(['backup-ran'], ctx({ storage: empty.storage }));
      expect(r['backup-ran']).toMatchObject({
        ok: false,
        evidence: expect.stringMatching(/^the newest daily backup is 56 h 0 min old, over 25 h: .*; a frequent backup since does not count$/),
      });
    } finally {
      await empty.cleanup();
    }
  });

  it('daily: no backup at all is not "ran", and "size" cannot be judged, so neither is ticked', async () => {
    const empty = await tempRoot();
    try {
      const r = await runVerifiers(['backup-ran', 'size-normal'], ctx({ storage: empty.storage }));
      expect(r['backup-ran']).toEqual({ ok: false, evidence: 'no backup of shop yet' });
      // A failed run is said even then: it is what to look at first.
      await createRunLog(redis, prefix).record('shop', { ok: false, at: new Date(NOW.getTime() - HOUR), reason: 'pg_dump: connection refused', jobId: 'j1' });
      const failed = await runVerifiers(['backup-ran'], ctx({ storage: empty.storage }));
      expect(failed['backup-ran']?.evidence).toMatch(/^no backup of shop yet; last run FAILED at \d\d:\d\d: pg_dump: connection refused$/);
      expect(r['size-normal']?.ok).toBe(false);
    } finally {
      await empty.cleanup();
    }
  });

  it('weekly: with no retention run recorded, "retention applied" stays open and says why, even when nothing has expired yet', async () => {
    const base = configWith([shop]);
    const off = { ...base, schedules: { ...base.schedules, retention: { ...base.schedules.retention, enabled: false } } };
    // A month ago nothing had expired yet: only the missing run keeps the box open.
    const r = await runVerifiers(['retention-applied'], ctx({ config: off, now: new Date(NOW.getTime() - 30 * DAY) }));
    expect(r['retention-applied']).toEqual({
      ok: false,
      evidence: 'no retention run recorded in the last 8 days (the retention job is turned off: `retention.enabled: false`); nothing past its deadline is left',
    });
  });

  it('weekly: a bot watching for less than a day says its first retention run is still to come, not that the workers are down', async () => {
    await createRunLog(redis, prefix).firstSeen('shop', new Date(NOW.getTime() - 2 * HOUR));
    const r = await runVerifiers(['retention-applied'], ctx());
    expect(r['retention-applied']?.ok).toBe(false);
    expect(r['retention-applied']?.evidence).toMatch(
      /^no retention run recorded in the last 8 days \(the bot has watched since .*, and its first daily run \(at \d\d:\d\d\) is still to come\)/,
    );
  });

  it('weekly and monthly: a backup past its deadline fails retention until the retention worker has run', async () => {
    // Watched for a month: a retention run was due long ago.
    await createRunLog(redis, prefix).firstSeen('shop', new Date(NOW.getTime() - 30 * DAY));
    const before = await runVerifiers(['retention-applied', 'retention-compliant'], ctx());
    expect(before['retention-applied']).toMatchObject({
      ok: false,
      evidence: expect.stringContaining(
        `no retention run recorded in the last 8 days (it is scheduled daily: are the workers running?); still there past their deadline: ${expired.backupId}`,
      ),
    });
    expect(before['retention-compliant']).toMatchObject({
      ok: false,
      evidence: expect.stringMatching(new RegExp(`^past their deadline: ${expired.backupId} .*; present: daily ×8$`)),
    });
    // Its deadline in the configured zone (Europe/Paris), as every other time of the checklist (QA: UTC+00:00).
    expect((before['retention-compliant'] as { evidence: string }).evidence).toMatch(/ UTC\+01:00/);
    expect((before['retention-compliant'] as { evidence: string }).evidence).not.toMatch(/UTC\+00:00/);

    // The real retention worker, through BullMQ: what it leaves (its job result) is what the checklist reads.
    const q = (name: string) => new Queue(`${name}-${randomUUID()}`, { connection: redis, prefix });
    const [retention, backupQ, restoreTestQ, restoreQ] = [q('retention'), q('backup'), q('restore-test'), q('restore')];
    const auditDir = await mkdtemp(join(tmpdir(), 'pgbb-cl-audit-'));
    const worker = new Worker(
      retention.name,
      retentionProcessor({
        storage,
        copies: [],
        queues: { backup: backupQ, restoreTest: restoreTestQ, restore: restoreQ } as never,
        notifier: recordingNotifier(),
        audit: createAuditLog(auditDir, silentLog),
        log: silentLog,
        now: () => NOW,
      }),
      { connection: redis, prefix },
    );
    const events = new QueueEvents(retention.name, { connection: redis, prefix });
    try {
      await events.waitUntilReady();
      const job = await retention.add('retention', { dryRun: false });
      await job.waitUntilFinished(events, 30_000);
      const after = await runVerifiers(['retention-applied', 'retention-compliant'], ctx({ retention: retentionRunsFromQueue(retention) }));
      expect(after['retention-applied']).toMatchObject({
        ok: true,
        evidence: expect.stringMatching(
          /^last retention run .+: deleted 1, cleaned 0 unfinished, kept 0 past the deadline; nothing past its deadline is left$/,
        ),
      });
      expect(after['retention-compliant']).toEqual({ ok: true, evidence: 'nothing past its deadline; present: daily ×7' });
    } finally {
      await worker.close();
      await events.close();
      await Promise.all([retention, backupQ, restoreTestQ, restoreQ].map(async (x) => x.obliterate({ force: true }).then(() => x.close())));
      await rm(auditDir, { recursive: true, force: true });
    }
  });

  it('monthly: a class the policy makes that has no backup fails compliance, named per target', async () => {
    const stage: TargetConfig = defaultTarget('stage', 'postgres://pgbb@127.0.0.1:1/stage', 'staging');
    const r = await runVerifiers(['retention-compliant'], ctx({ config: configWith([shop, stage]), now: new Date(NOW.getTime() + 2 * DAY) }));
    expect(r['retention-compliant']).toMatchObject({
      ok: false,
      evidence: expect.stringMatching(/^shop: past their deadline: .*; stage: nothing past its deadline; no weekly backup stored yet$/),
    });
  });

  it('monthly: a restore test this month counts as documented; one from last month does not', async () => {
    await storage.writeRecord(restoreTestRecord(backups[3]?.backupId ?? '', true, new Date('2026-10-31T10:00:00Z')));
    const october = await runVerifiers(['restore-test-documented'], ctx());
    expect(october['restore-test-documented']).toEqual({ ok: false, evidence: 'no restore test recorded since 2026-11-01' });

    const record = restoreTestRecord(backups[2]?.backupId ?? '', true, new Date('2026-11-07T03:00:00Z'));
    await storage.writeRecord(record);
    const r = await runVerifiers(['restore-test-documented'], ctx());
    expect(r['restore-test-documented']).toEqual({
      ok: true,
      evidence: `restore test of ${record.backupId} on Sat 2026-11-07 04:00 UTC+01:00 passed, restore time (RTO) 800 ms, record ${record.id}`,
    });
  });
});

describe('newest-lists: pg_restore --list of the newest backup', () => {
  let source: { url: string; drop(): Promise<void> };
  let root: string;
  let storage: LocalStorage;
  let cleanup: () => Promise<void>;
  let app: TargetConfig;

  beforeAll(async () => {
    source = await createTestDatabase(inject('pgUrl'), 'cl');
    await runSql(source.url, 'CREATE TABLE t (id int primary key, note text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 500) g;');
    ({ root, storage, cleanup } = await tempRoot());
    app = defaultTarget('app', source.url, 'staging');
  });
  afterAll(async () => {
    await cleanup();
    await source.drop();
  });

  it('reads the table of contents of the stored archive, then fails once the artifact is damaged', async () => {
    const m = await runBackup(backupOptions(source.url, storage, { target: app }));
    const ctx: VerifierContext = { config: configWith([app]), storage, runs: null, retention: null, log: silentLog, now: new Date() };
    const ok = await runVerifiers(['newest-lists'], ctx);
    expect(ok['newest-lists']).toMatchObject({
      ok: true,
      evidence: expect.stringMatching(new RegExp(`^${m.backupId} \\(\\d\\d:\\d\\d\\): pg_restore --list read \\d+ TOC entries in `)),
    });

    // Same size, zeroed head: zstd no longer recognises the frame, so pg_restore reads nothing.
    const file = await open(join(root, 'app', m.backupId, 'database.pgdump.zst'), 'r+');
    await file.write(Buffer.alloc(64), 0, 64, 0);
    await file.close();
    const bad = await runVerifiers(['newest-lists'], ctx);
    expect(bad['newest-lists']).toMatchObject({ ok: false, evidence: expect.stringContaining(`${m.backupId} (`) });
    expect(bad['newest-lists']?.evidence).toMatch(/pg_restore --list failed|does not decompress|lists no entries/);
  });
});
