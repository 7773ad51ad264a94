import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../../src/config.ts';
import { loadIdentity } from '../../../src/crypto/age.ts';
import type { EphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { walStatusLines } from '../../../src/commands/wal-status.ts';
import { walOffsiteCondition } from '../../../src/health/offsite-condition.ts';
import { rpoCondition } from '../../../src/health/rpo-condition.ts';
import { readArchiveFacts } from '../../../src/health/wal-facts.ts';
import { readWalState } from '../../../src/jobs/wal-state.ts';
import { awaitBaseWal } from '../../../src/postgres/pitr/base-wal.ts';
import { parseLsn, segmentEndLsn } from '../../../src/postgres/pitr/lsn.ts';
import { archiveWalList, forgetRemoteEntries } from '../../../src/postgres/pitr/s3-archive.ts';
import { pitrRetentionTargets, runPitrRetention } from '../../../src/postgres/pitr/pitr-retention.ts';
import { runPitrTest } from '../../../src/postgres/pitr/pitr-test.ts';
import { s3PitrStore } from '../../../src/postgres/pitr/s3-pitr-store.ts';
import { startWalArchives, type WalArchives } from '../../../src/workers/wal-archives.ts';
import { until } from '../../support/until.ts';
import { cli } from '../../support/app-backups.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';
import { readableByServer, recoveredMarkers } from '../../support/recovered-server.ts';
import type { TestS3Server } from '../../support/s3-server.ts';
import { seedForRecovery, setUpS3Pitr, switchSegment as switchAt, tearDownS3Pitr, walStateUntil } from '../../support/s3-pitr-setup.ts';
import { rawBucket, TEST_CREDENTIALS } from '../../support/s3-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * S3 as the primary store of the PITR archive (S3_MODE=primary): the worker's disk is a spool. Real cluster, the
 * real worker component (startWalArchives), the S3 stand-in; encrypted with age throughout.
 */
describe('the PITR archive with S3 as its primary store (S3_MODE=primary)', () => {
  let source: EphemeralPostgres;
  let s3: TestS3Server;
  let dir: string;
  let redis: Redis;
  let config: Config;
  let archives: WalArchives;
  let env: Record<string, string>;
  const prefix = `{pgbbt${randomBytes(3).toString('hex')}}`;
  const _target = () => config.targets[0] as Config['targets'][number];
  const bucket = () => s3PitrStore(config, 'app', { credentials: TEST_CREDENTIALS }) as NonNullable<ReturnType<typeof s3PitrStore>>;
  const spool = () => join(dir, 'worker-disk', 'app', '_wal');
  const spooled = async () => (await readdir(spool()).catch(() => [] as string[])).filter((n) => n !== '_partial');

  beforeAll(async () => {
    ({ source, s3, dir, env, config, redis } = await setUpS3Pitr({
      mode: 'primary',
      bucket: 'pgbb-primary',
      slot: 'pgbb_primary',
      pitrExtra: 'rpoSeconds: 10',
      prefix,
      redisUrl: inject('redisUrl'),
    }));
    archives = await startWalArchives({ config, redis, log: silentLog, offsiteEveryMs: 200 });
    await seedForRecovery({ source, s3, dir, env, config, redis });
  }, 120_000);

  afterAll(() => tearDownS3Pitr({ source, s3, dir, redis }, archives));

  /** The PITR restore test of `latest`, as the worker runs it with S3 as the primary store. */
  const testFromBucket = async (remote: ReturnType<typeof bucket>, label: string) =>
    runPitrTest({
      target: 'app',
      root: env.BACKUP_DIR as string,
      asked: 'latest',
      identity: await loadIdentity(env.BACKUP_ENCRYPTION_IDENTITY_FILE as string, 'test'),
      sourceUrl: source.url,
      markers: false,
      heapallindexed: false,
      log: silentLog,
      label,
      offsite: remote,
      primary: true,
    });

  const switchSegment = (label: string) => switchAt(source.url, label);

  const stateUntil = (ok: Parameters<typeof walStateUntil>[2], what: string) => walStateUntil(redis, prefix, ok, what);
  const inS3 = (name: string) => stateUntil((x) => (x.lastArchived ?? '') >= name && x.offsitePending === '0', `archived ${name} in S3`);

  it('streams the base backup into the bucket: nothing of it is left on the worker disk', async () => {
    const remote = bucket();
    try {
      const bases = await remote.listBases();
      expect(bases.map((b) => b.id)).toEqual([expect.stringMatching(/^app-base-/)]);
      expect(bases[0]?.encryption).toBe('age');
      expect(await readdir(join(dir, 'worker-disk', 'app', '_base')).catch(() => [])).toEqual([]);
      // Recoverable once its WAL is in the bucket, as the base-backup worker judges it before calling it good.
      const archived = archiveWalList(config, 'app');
      const wal = await awaitBaseWal(archived, bases[0] as NonNullable<(typeof bases)[0]>, { timeoutMs: 60_000, pollMs: 200 }).finally(() => archived.close());
      expect(wal).toEqual({ state: 'archived' });
    } finally {
      remote.client.destroy();
    }
  });

  it('archives each segment to S3, removes it from the spool, and reads the window from S3', async () => {
    const name = await switchSegment('archived');
    const s = await inS3(name);
    expect(s.offsiteRole).toBe('primary');
    expect(s.offsiteWhere).toBe(`s3://${s3.bucket}/pgbb/app`);
    const remote = bucket();
    try {
      const wal = await remote.listWal();
      expect(wal.map((w) => w.name)).toContain(name);
      expect(wal.every((w) => w.file?.endsWith('.zst.age'))).toBe(true);
    } finally {
      remote.client.destroy();
    }
    // The spool holds nothing the bucket has: no entry for the segment, and no file without its entry.
    const local = await spooled();
    expect(local).not.toContain(`${name}.json`);
    expect(local.filter((n) => n.endsWith('.zst.age')).map((n) => n.slice(0, 24))).toEqual(local.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, 24)));
    // The window opens once WAL in the bucket reaches past the base backup's finish: this segment, or when the server
    // wrote past it before it was archived, the snapshot of the next one (taken at once, uploaded within 200 ms).
    const opened = async () => (await readArchiveFacts(config, 'app')).window;
    for (const end = Date.now() + 30_000; !(await opened()) && Date.now() < end; ) await sleep(200);
    // A fresh process's reading: one listing, and of the entries only the newest segment's (not one GET per segment).
    forgetRemoteEntries();
    const before = s3.requests.length;
    const facts = await readArchiveFacts(config, 'app');
    const entryReads = s3.requests.slice(before).filter((r) => /^GET \/pgbb-primary\/pgbb\/app\/_wal\/[0-9A-F]{24}\.json/.test(r));
    expect(entryReads.length).toBe(1);
    expect(facts).toMatchObject({ baseBackups: 1, gaps: [], reachesNewest: true });
    expect(facts.unreadable).toBeUndefined();
    expect(facts.newestSegment && facts.newestSegment >= name).toBe(true);
    expect(facts.window?.to.getTime()).toBeGreaterThan(facts.window?.from.getTime() ?? Number.POSITIVE_INFINITY);
    // /backup status as a user reads it: the newest segment in the bucket, the window from it, the uploads.
    const status = (await walStatusLines(config, redis)).join('\n');
    expect(status).toMatch(/newest whole segment archived [0-9A-F]{24}, [\d.]+ m?s ago/);
    expect(status).toContain('recoverable to any moment from');
    expect(status).toContain('S3: archived in s3://pgbb-primary/pgbb/app (the primary store): newest segment there');
    expect(walOffsiteCondition('app', new Date(), s)).toMatchObject({
      status: 'ok',
      severity: 'error',
      evidence: expect.stringMatching(/^archived in s3:\/\/pgbb-primary\/pgbb\/app \(the primary store\): newest segment there /),
    });
  }, 120_000);

  it('does not count a segment that is only in the spool', async () => {
    // A worker whose next upload is a minute away: the segment is archived on its disk, not yet in the bucket.
    await archives.stop();
    archives = await startWalArchives({ config, redis, log: silentLog, offsiteEveryMs: 60_000 });
    try {
      await stateUntil((x) => x.receiver === 'up' && x.offsiteCheckedAt !== undefined, 'restarted');
      await sleep(1000);
      const name = await switchSegment('spooled-only');
      for (let i = 0; !(await spooled()).includes(`${name}.json`); i++) {
        if (i > 300) throw new Error(`${name} never archived into the spool`);
        await sleep(100);
      }
      // Not in the bucket as a whole segment. (A snapshot of it may be: the upload pass at the restart can take one of
      // the segment then being written, which the window reads as far as it reaches: CI.)
      const remote = bucket();
      try {
        const whole = await remote.listWal();
        expect(whole.some((w) => w.name === name)).toBe(false);
        expect(whole.length).toBeGreaterThan(0);
      } finally {
        remote.client.destroy();
      }
      const s = await readWalState(redis, prefix, 'app');
      expect((s?.lastArchived ?? '') < name).toBe(true);
    } finally {
      await archives.stop();
      archives = await startWalArchives({ config, redis, log: silentLog, offsiteEveryMs: 200 });
    }
  }, 120_000);

  it('S3 unreachable: nothing counted, the spool kept, the RPO grows and the condition pages; caught up when S3 is back', async () => {
    await inS3(await switchSegment('before-outage'));
    await s3.stop();
    let name = '';
    try {
      name = await switchSegment('during-outage');
      const s = await stateUntil((x) => x.offsiteError !== undefined && x.offsiteFailingSince !== undefined, 'saw the upload fail');
      // Archived into the spool, and kept there through failing passes.
      for (let i = 0; !(await spooled()).includes(`${name}.json`); i++) {
        if (i > 300) throw new Error(`${name} never archived into the spool`);
        await sleep(100);
      }
      await sleep(1500);
      expect(await spooled()).toEqual(expect.arrayContaining([`${name}.json`, `${name}.zst.age`]));
      const now = await stateUntil((x) => x.archivedLsn !== undefined && x.rpoMeasuredAt !== undefined && x.offsiteError !== undefined, 'measured');
      expect((now.lastArchived ?? '') < name).toBe(true);
      expect(parseLsn(now.archivedLsn ?? '0/0') < segmentEndLsn(name)).toBe(true);
      // The window cannot be read, so it is not reported good.
      const facts = await readArchiveFacts(config, 'app');
      expect(facts.window).toBeNull();
      expect(facts.unreadable).toMatch(/s3:\/\/pgbb-primary\/pgbb\/app/);
      const status = (await walStatusLines(config, redis)).join('\n');
      expect(status).toContain(':rotating_light: the WAL archive could not be read: ');
      expect(status).toMatch(
        /S3: archived in s3:\/\/pgbb-primary\/pgbb\/app \(the primary store\): .*segments? on the worker's disk, not archived until uploaded.*the last upload failed/,
      );
      const later = new Date(Date.parse(s.offsiteFailingSince ?? '') + 6 * 60_000);
      expect(walOffsiteCondition('app', later, now)).toMatchObject({
        status: 'failing',
        severity: 'error',
        summary: 'The WAL archive of app is not reaching S3, its primary store',
        evidence: expect.stringMatching(/the spool is kept until it is uploaded$/),
      });
      // Behind for as long as the bucket lacks the commit: the 10 s objective fails while the outage lasts.
      const behind = await stateUntil((x) => rpoCondition('app', new Date(), x).status === 'failing', 'judged the RPO over its objective');
      expect(rpoCondition('app', new Date(), behind).evidence).toMatch(/WAL missing from it since/);
    } finally {
      await s3.restart();
    }
    await inS3(name);
    expect(await spooled()).not.toContain(`${name}.json`);
    expect((await readArchiveFacts(config, 'app')).newestSegment && ((await readArchiveFacts(config, 'app')).newestSegment ?? '') >= name).toBe(true);
  }, 180_000);

  it('a worker that starts while S3 is unreachable says the RPO is unknown and why, and measures it once S3 is back', async () => {
    await archives.stop();
    await s3.stop();
    try {
      archives = await startWalArchives({ config, redis, log: silentLog, offsiteEveryMs: 200 });
      // The RPO monitor and the upload loop each find S3 gone on their own pass: both are waited for.
      const s = await stateUntil(
        (x) => /^the archive could not be read: /.test(x.rpoError ?? '') && x.offsiteError !== undefined,
        'said the RPO is unknown and the upload failed',
      );
      expect(rpoCondition('app', new Date(), s).evidence).toMatch(/^unknown since .*: the archive could not be read: /);
      expect(walOffsiteCondition('app', new Date(), s)?.evidence).toMatch(/the last upload failed/);
    } finally {
      await s3.restart();
    }
    await stateUntil((x) => x.rpoError === undefined && x.rpoMeasuredAt !== undefined && x.offsiteError === undefined, 'measured again');
  }, 120_000);

  it('restore-pitr recovers to a time from S3 without --from: the earlier write present, the later absent', async () => {
    await switchSegment('before-2');
    await sleep(1100);
    const at = new Date();
    await sleep(1100);
    await inS3(await switchSegment('after'));
    const dataDir = join(dir, 'restored');
    // The worker's disk must let the server's user through (postgres: these tests run as root); what restore-pitr
    // fetches from the bucket it then shares with that user itself.
    await readableByServer([dir]);
    const run = await cli(['restore-pitr', 'app', `--time=${at.toISOString()}`, `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      /^Fetched base backup app-base-\S+ and \d+ WAL file\(s\) \([^)]+ new\) from s3:\/\/pgbb-primary\/pgbb\/app into .*_restore-pitr\./,
    );
    // What was fetched is not cleaned up behind the recovery's back; the output says where it is and when it can go.
    expect(run.stdout).toContain(
      `The base backup and WAL fetched for it stay in ${join(dir, 'worker-disk', '_restore-pitr', 'app')}, which the recovery reads`,
    );
    // The server's user reads the fetched archive under BACKUP_DIR (docs: it must be able to read BACKUP_DIR).
    const { labels } = await recoveredMarkers(dataDir, [join(dir, 'worker-disk')]);
    expect(labels).toContain('before-2');
    expect(labels).toContain('during-outage');
    expect(labels).not.toContain('after');
  }, 180_000);

  it('a quiet server: the snapshot of the segment being written is uploaded and counted, and recovery reaches into it', async () => {
    await inS3(await switchSegment('quiet-start'));
    const write = (label: string) => withClient(source.url, (c) => c.query('INSERT INTO markers VALUES ($1)', [label]));
    await write('quiet-before');
    await sleep(1100);
    const at = new Date();
    await sleep(1100);
    await write('quiet-after');
    const wrote = Date.now();
    // No segment switch: caught up (nothing the server had written missing from the bucket) at a sample taken a
    // second after the write, only through the snapshot of the segment being written.
    const s = await stateUntil(
      (x) => Date.parse(x.rpoMeasuredAt ?? '') > wrote + 1000 && x.rpoBehindSince === undefined && x.currentLsn !== undefined,
      'caught up through the snapshot in the bucket',
    );
    const last = {
      name: await withClient(
        source.url,
        async (c) => (await c.query<{ n: string }>('SELECT pg_walfile_name($1::pg_lsn) AS n', [s.currentLsn])).rows[0]?.n as string,
      ),
    };
    expect((s.lastArchived ?? '') < last.name).toBe(true);
    expect(parseLsn(s.archivedLsn ?? '0/0')).toBeGreaterThanOrEqual(parseLsn(s.currentLsn ?? ''));
    const remote = bucket();
    try {
      expect((await remote.listPartials()).map((p) => p.name)).toEqual([last.name]);
    } finally {
      remote.client.destroy();
    }
    const facts = await readArchiveFacts(config, 'app');
    expect(facts.newestSegment).toBe(last.name);
    expect(facts.window?.to.getTime()).toBeGreaterThan(at.getTime());
    const dataDir = join(dir, 'restored-quiet');
    // The worker's disk must let the server's user through (postgres: these tests run as root); what restore-pitr
    // fetches from the bucket it then shares with that user itself.
    await readableByServer([dir]);
    const run = await cli(['restore-pitr', 'app', `--time=${at.toISOString()}`, `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    const { labels } = await recoveredMarkers(dataDir, [join(dir, 'worker-disk')]);
    expect(labels).toContain('quiet-before');
    expect(labels).not.toContain('quiet-after');
  }, 180_000);

  it('the PITR restore test plans on the bucket and recovers from it', async () => {
    const whole = await switchSegment('for-the-test');
    await inS3(whole);
    const remote = bucket();
    try {
      // The quiet test's snapshot is superseded by its whole segment: gone from the bucket.
      expect((await remote.listPartials()).filter((p) => p.name <= whole)).toEqual([]);
      const out = await testFromBucket(remote, 's3primary');
      expect(out.passed, JSON.stringify(out.checks, null, 1)).toBe(true);
      expect(out.checks[0]).toEqual({
        name: 'archive in S3',
        ok: true,
        detail: expect.stringMatching(/^base backup app-base-\S+ and \d+ WAL file\(s\) fetched from s3:\/\/pgbb-primary\/pgbb\/app, every sha256 matching$/),
      });
    } finally {
      remote.client.destroy();
    }
  }, 180_000);

  it('a segment a fetch finds damaged in the bucket (read three times alike) is marked there: the window stops claiming it (QA)', async () => {
    const whole = await switchSegment('to-be-damaged');
    await inS3(whole);
    // One after it in the bucket too: then it is a gap inside the archive, not its end.
    await inS3(await switchSegment('after-the-damaged'));
    const raw = rawBucket(s3);
    const remote = bucket();
    try {
      const key = (await raw.keys('pgbb/app/_wal/')).find((k) => k.endsWith(`/${whole}.zst.age`)) as string;
      const bytes = await raw.get(key);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
      await raw.put(key, bytes);
      const out = await testFromBucket(remote, 's3damaged');
      expect(out.passed).toBe(false);
      expect(out.checks[0]?.detail).toMatch(
        new RegExp(
          `^could not be fetched from s3://pgbb-primary/pgbb/app: WAL ${whole} in .* the copy is damaged\\. Read three times alike, it was marked damaged in the bucket`,
        ),
      );
      expect((await remote.listWal()).find((w) => w.name === whole)).toMatchObject({ file: null, damaged: true });
      // The file itself stays (never deleted by the bot); only the listings count it missing.
      expect(await raw.keys(`pgbb/app/_wal/_damaged/`)).toEqual([`pgbb/app/_wal/_damaged/${whole}.json`]);
      const facts = await readArchiveFacts(config, 'app');
      expect(facts.gaps, JSON.stringify(facts)).toContain(whole);
    } finally {
      remote.client.destroy();
      raw.destroy();
    }
  }, 180_000);

  it('retention plans on the bucket and deletes there', async () => {
    // The CLI, as an operator runs it: straight into the bucket.
    const taken = await cli(['base-backup', 'app'], env);
    expect(taken.exitCode, taken.stderr).toBe(0);
    expect(taken.stderr).toContain('Base backup of app to s3://pgbb-primary/pgbb …');
    expect(taken.stdout).toMatch(/sha256 +[0-9a-f]{64} \(hashed as uploaded, size checked in S3\)/);
    await inS3(await switchSegment('after-second-base'));
    const remote = bucket();
    try {
      const [basesBefore, walBefore] = await Promise.all([remote.listBases(), remote.listWal()]);
      expect(basesBefore.length).toBe(2);
      const run = await runPitrRetention({
        root: env.BACKUP_DIR as string,
        targets: pitrRetentionTargets(config),
        dryRun: false,
        log: silentLog,
        offsite: config,
        now: () => new Date(Date.now() + 30 * 86_400_000),
      });
      expect(run.targets[0]?.failures).toEqual([]);
      expect(run.targets[0]?.deleted.bases).toBe(1);
      expect(run.targets[0]?.deleted.wal).toBeGreaterThan(0);
      const [basesAfter, walAfter] = await Promise.all([remote.listBases(), remote.listWal()]);
      expect(basesAfter.map((b) => b.id)).toEqual([basesBefore[1]?.id]);
      expect(walAfter.length).toBe(walBefore.length - (run.targets[0]?.deleted.wal ?? 0));
      // The segment marked damaged above went with the rest, its mark too (second reader: left in the bucket for ever).
      const raw = rawBucket(s3);
      try {
        expect(walBefore.some((w) => w.damaged)).toBe(true);
        expect(walAfter.some((w) => w.damaged)).toBe(false);
        expect(await raw.keys('pgbb/app/_wal/_damaged/')).toEqual([]);
      } finally {
        raw.destroy();
      }
      // The window from the newer base backup, once the archive reaches past its finish: the segment after it may
      // have been stamped with a sample taken before the base backup finished (a loaded machine: CI), and then it
      // opens with the next snapshot or segment.
      await until('the window from the newer base backup', async () => (await readArchiveFacts(config, 'app')).window ?? undefined, 60_000);
    } finally {
      remote.client.destroy();
    }
  }, 120_000);
});
