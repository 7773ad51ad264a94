import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../../src/config.ts';
import { loadIdentity } from '../../../src/crypto/age.ts';
import type { EphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { walOffsiteCondition } from '../../../src/health/offsite-condition.ts';
import { pitrRetentionTargets, runPitrRetention } from '../../../src/postgres/pitr/pitr-retention.ts';
import { runPitrTest } from '../../../src/postgres/pitr/pitr-test.ts';
import { s3PitrStore } from '../../../src/postgres/pitr/s3-pitr-store.ts';
import { takeBaseBackup } from '../../../src/postgres/pitr/take-base-backup.ts';
import { startWalArchives, type WalArchives } from '../../../src/workers/wal-archives.ts';
import { cli } from '../../support/app-backups.ts';
import { silentLog } from '../../support/postgres-helpers.ts';
import { recoveredMarkers } from '../../support/recovered-server.ts';
import type { TestS3Server } from '../../support/s3-server.ts';
import { seedForRecovery, setUpS3Pitr, switchSegment as switchAt, tearDownS3Pitr, walStateUntil } from '../../support/s3-pitr-setup.ts';
import { TEST_CREDENTIALS } from '../../support/s3-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The PITR archive copied to S3 (S3_MODE=copy) by the worker holding the WAL lease, and recovered from there alone:
 * the worker's disk lost, `restore-pitr --from=s3` into an empty BACKUP_DIR, the server started on it. Real cluster,
 * real worker component, the S3 stand-in; encrypted with age throughout.
 */
describe('the PITR archive off-site (S3_MODE=copy)', () => {
  let source: EphemeralPostgres;
  let s3: TestS3Server;
  let dir: string;
  let redis: Redis;
  let config: Config;
  let archives: WalArchives;
  let env: Record<string, string>;
  const prefix = `{pgbbt${randomBytes(3).toString('hex')}}`;

  beforeAll(async () => {
    ({ source, s3, dir, env, config, redis } = await setUpS3Pitr({
      mode: 'copy',
      bucket: 'pgbb-pitr',
      slot: 'pgbb_offsite',
      prefix,
      redisUrl: inject('redisUrl'),
    }));
    archives = await startWalArchives({ config, redis, log: silentLog, offsiteEveryMs: 200 });
    await seedForRecovery({ source, s3, dir, env, config, redis });
  }, 120_000);

  afterAll(() => tearDownS3Pitr({ source, s3, dir, redis }, archives));

  const switchSegment = (label: string) => switchAt(source.url, label);

  const offsiteUntil = (ok: Parameters<typeof walStateUntil>[2], what: string) => walStateUntil(redis, prefix, ok, what);

  it('copies every archived segment and the base backup, and says how far the copy is', async () => {
    const name = await switchSegment('copied');
    const s = await offsiteUntil((x) => (x.offsiteNewest ?? '') >= name && x.offsitePending === '0', `copied ${name}`);
    expect(s.offsiteWhere).toBe(`s3://${s3.bucket}/pgbb/app`);
    const remote = s3PitrStore(config, 'app', { credentials: TEST_CREDENTIALS });
    const [bases, wal] = await Promise.all([remote?.listBases(), remote?.listWal()]);
    remote?.client.destroy();
    expect(bases?.length).toBe(1);
    expect(wal?.map((w) => w.name)).toContain(name);
    // Encrypted off-site as on disk: the same bytes, never a plaintext copy.
    expect(wal?.every((w) => w.file?.endsWith('.zst.age'))).toBe(true);
    expect(walOffsiteCondition('app', new Date(), s)).toMatchObject({
      status: 'ok',
      evidence: expect.stringMatching(/^copied to s3:\/\/pgbb-pitr\/pgbb\/app: newest segment there /),
    });
  }, 120_000);

  it('keeps archiving while S3 is down, says so, and catches up when it is back', async () => {
    await s3.stop();
    try {
      const name = await switchSegment('while-s3-down');
      const s = await offsiteUntil((x) => x.lastArchived !== undefined && x.lastArchived >= name && x.offsiteError !== undefined, 'saw the copy fail');
      expect(s.offsiteFailingSince).toBeDefined();
      // Within the grace it is said, not paged; past it, the warning names what fails.
      expect(walOffsiteCondition('app', new Date(), s)?.status).toBe('ok');
      const later = new Date(Date.parse(s.offsiteFailingSince ?? '') + 16 * 60_000);
      expect(walOffsiteCondition('app', later, s)).toMatchObject({
        status: 'failing',
        severity: 'warning',
        summary: 'The WAL archive of app is not being copied off-site',
      });
    } finally {
      await s3.restart();
    }
    await offsiteUntil((x) => x.offsiteError === undefined && x.offsitePending === '0', 'caught up');
  }, 120_000);

  it('recovers to a moment from S3 alone: the worker disk gone, restore-pitr --from=s3 into an empty BACKUP_DIR', async () => {
    await switchSegment('before-2');
    await sleep(1100);
    const target = new Date();
    await sleep(1100);
    const last = await switchSegment('after');
    await offsiteUntil((x) => (x.offsiteNewest ?? '') >= last && x.offsitePending === '0', `copied ${last}`);
    // A new host: nothing of the worker's disk, only the bucket and the key.
    const fresh = { ...env, BACKUP_DIR: join(dir, 'new-host') };
    const dataDir = join(dir, 'restored');
    const local = await cli(['restore-pitr', 'app', `--time=${target.toISOString()}`, `--data-dir=${dataDir}`], fresh);
    // Not "no point in time can be recovered": where it looked, and where else the archive is.
    expect(local.stderr).toContain(`BACKUP_DIR ${join(dir, 'new-host')} does not exist`);
    expect(local.stderr).toContain("The archive's copy in S3 (s3://pgbb-pitr) is read with --from=s3.");
    const run = await cli(['restore-pitr', 'app', `--time=${target.toISOString()}`, `--data-dir=${dataDir}`, '--from=s3'], fresh);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Fetched base backup app-base-\S+ and \d+ WAL file\(s\) \([^)]+ new\) from s3:\/\/pgbb-pitr\/pgbb\/app into /);
    expect(run.stdout).toMatch(/\nLaid out base backup app-base-/);
    expect((await readdir(join(dir, 'new-host', 'app', '_wal'))).length).toBeGreaterThan(0);

    const { labels } = await recoveredMarkers(dataDir, [join(dir, 'new-host')]);
    expect(labels).toEqual(['before-1', 'copied', 'while-s3-down', 'before-2']);
  }, 180_000);

  it('Ctrl-C during the download from S3 stops it: nothing half-downloaded or laid out is left (QA: it waited for the download)', async () => {
    const fresh = { ...env, BACKUP_DIR: join(dir, 'canceled-host') };
    const dataDir = join(dir, 'canceled');
    const seen = s3.requests.length;
    const run = cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${dataDir}`, '--from=s3'], fresh);
    for (let i = 0; !s3.requests.slice(seen).some((r) => /^GET \/pgbb-pitr\/.*_base\//.test(r)); i++) {
      if (i > 300) throw new Error('the base backup was never asked for');
      await sleep(20);
    }
    run.kill('SIGINT');
    const r = await run;
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/canceled/);
    const left = await readdir(join(dir, 'canceled-host'), { recursive: true }).catch(() => []);
    expect(left.filter((f) => String(f).endsWith('.partial'))).toEqual([]);
    expect(await readdir(dataDir).catch(() => 'absent')).toBe('absent');
  }, 60_000);

  it('the PITR restore test recovers from the copy in S3, says so, and fails when the copy cannot be read', async () => {
    await switchSegment('for-the-test');
    const remote = s3PitrStore(config, 'app', { credentials: TEST_CREDENTIALS });
    const identity = await loadIdentity(env.BACKUP_ENCRYPTION_IDENTITY_FILE as string, 'test');
    const options = {
      target: 'app',
      root: env.BACKUP_DIR as string,
      asked: 'latest',
      identity,
      sourceUrl: source.url,
      markers: false,
      heapallindexed: false,
      log: silentLog,
      offsite: remote,
    };
    try {
      await offsiteUntil((x) => x.offsitePending === '0' && x.offsiteError === undefined, 'caught up');
      const out = await runPitrTest({ ...options, label: 'offsite1' });
      expect(out.passed, JSON.stringify(out.checks, null, 1)).toBe(true);
      expect(out.checks[0]).toEqual({
        name: 'off-site copy',
        ok: true,
        detail: expect.stringMatching(/^base backup app-base-\S+ and \d+ WAL file\(s\) fetched from s3:\/\/pgbb-pitr\/pgbb\/app, every sha256 matching$/),
      });
      expect(out.scratchRemoved).toBe(true);
      await s3.stop();
      const down = await runPitrTest({ ...options, label: 'offsite2' }).finally(() => s3.restart());
      expect(down.passed).toBe(false);
      expect(down.checks).toEqual([
        { name: 'off-site copy', ok: false, detail: expect.stringMatching(/^could not be fetched from s3:\/\/pgbb-pitr\/pgbb\/app: /) },
      ]);
    } finally {
      remote?.client.destroy();
    }
  }, 180_000);

  it('retention deletes from the copy what it deletes on disk, and nothing the disk keeps', async () => {
    await takeBaseBackup(config, config.targets[0] as Config['targets'][number], { reserveWal: true });
    const last = await switchSegment('after-second-base');
    await offsiteUntil((x) => (x.offsiteNewest ?? '') >= last && x.offsitePending === '0', `copied ${last}`);
    const remote = s3PitrStore(config, 'app', { credentials: TEST_CREDENTIALS });
    if (!remote) throw new Error('no S3 copy configured');
    try {
      const [basesBefore, walBefore] = await Promise.all([remote.listBases(), remote.listWal()]);
      expect(basesBefore.length).toBe(2);
      // A month on, the WAL before the newest base backup is past its 7 days: it and the older base backup go.
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
      const [basesAfter, walAfter] = await Promise.all([remote.listBases(), remote.listWal()]);
      expect(basesAfter.map((b) => b.id)).toEqual([basesBefore[1]?.id]);
      const localWal = (await readdir(join(env.BACKUP_DIR as string, 'app', '_wal')))
        .filter((n) => n.endsWith('.json'))
        .map((n) => n.slice(0, -5))
        .sort();
      expect(walAfter.map((w) => w.name)).toEqual(localWal);
      expect(walAfter.length).toBeLessThan(walBefore.length);
    } finally {
      remote.client.destroy();
    }
  }, 120_000);
});
