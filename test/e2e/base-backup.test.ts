import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDecryptStream, loadIdentity } from '../../src/crypto/age.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { type BaseBackup, BaseBackupSchema } from '../../src/postgres/pitr/base-backup.ts';
import { listBaseBackups } from '../../src/postgres/pitr/pitr-restore.ts';
import { findPgProgram, findPgTools } from '../../src/postgres/tools.ts';
import { plannedSchedulers, syncSchedulers } from '../../src/schedules/sync.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { auditLines, channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * Base backups for point-in-time recovery as the bot runs them: `/backup now --physical` through Bolt's HTTP receiver,
 * the base-backup worker, the Slack and PagerDuty stand-ins, on a PostgreSQL cluster of the test's own (a base backup
 * copies the whole cluster; the shared test server is everyone's).
 */
let h: Harness;
let pg: EphemeralPostgres;
let cfg: string;
let work: string;
const ROLE = 'pgbb_flaky_replicator';

beforeAll(async () => {
  pg = await startEphemeralPostgres();
  await withClient(pg.url, async (c) => {
    await c.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g');
    // May log in, may not replicate: pg_basebackup is refused until the test grants REPLICATION.
    await c.query(`CREATE ROLE ${ROLE} LOGIN NOREPLICATION`);
  });
  const flaky = new URL(pg.url);
  flaky.username = ROLE;
  work = await mkdtemp(join(tmpdir(), 'pgbb-e2e-base-'));
  cfg = join(work, 'pg-backup-bot.yml');
  await writeFile(
    cfg,
    [
      'encryption: age',
      'targets:',
      '  - name: app',
      '    urlEnv: APP_URL',
      '    environment: production',
      '    pitr: { urlEnv: APP_REPLICATION_URL }',
      '  - name: flaky',
      '    urlEnv: APP_URL',
      '    environment: staging',
      '    pitr: { urlEnv: FLAKY_REPLICATION_URL }',
      '  - name: plain',
      '    urlEnv: APP_URL',
      '    environment: staging',
      '',
    ].join('\n'),
  );
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: { BOT_CONFIG: cfg, APP_URL: pg.url, APP_REPLICATION_URL: pg.url, FLAKY_REPLICATION_URL: flaky.toString() },
    // A job that finds its target's base backup running tries again this soon (30 s in production).
    workerOptions: { backupLockRetryMs: 500 },
  });
}, 60_000);

afterAll(async () => {
  await h?.stop();
  await pg?.stop();
  await rm(work, { recursive: true, force: true });
});

/** What test/postgres/pitr/base-backup.test.ts checks: stored bytes and sha256 as recorded; decrypted, unpacked, verified. */
async function checkStored(b: BaseBackup): Promise<void> {
  const dir = join(h.backupDir, b.target, '_base', b.id);
  expect(BaseBackupSchema.parse(JSON.parse(await readFile(join(dir, 'base.json'), 'utf8')))).toEqual(b);
  const stored = await readFile(join(dir, b.file));
  expect(b.file).toBe('base.tar.zst.age');
  expect(stored.length).toBe(b.bytes);
  expect(createHash('sha256').update(stored).digest('hex')).toBe(b.sha256);
  const compressed = await buffer(await createDecryptStream(Readable.from(stored), await loadIdentity(h.identityFile, 'test'), []));
  const tar = (await execa('zstd', ['-dc'], { input: compressed, encoding: 'buffer' })).stdout as unknown as Buffer;
  expect(tar.length).toBe(b.rawBytes);
  const unpacked = join(work, `unpacked-${b.id}`);
  await mkdir(unpacked, { mode: 0o700 });
  await execa('tar', ['-xf', '-', '-C', unpacked], { input: tar });
  const tools = await findPgTools({ serverMajor: 15 });
  const pgVerifybackup = await findPgProgram('pg_verifybackup', tools.pgDump, tools.major);
  if (!pgVerifybackup) throw new Error('pg_verifybackup is not installed');
  // -n: the WAL is not in the base backup (-X none); it comes from the archive.
  const verify = await execa(pgVerifybackup, ['-n', unpacked], { reject: false });
  expect(verify.exitCode, `${verify.stdout}\n${verify.stderr}`).toBe(0);
  expect(verify.stdout).toMatch(/backup successfully verified/);
}

const fieldsOf = (m: { blocks: unknown[] | undefined }) => JSON.stringify(m.blocks ?? []);

describe('/backup now --physical, end to end', () => {
  it('acks at once with the job id, posts a message that ends with the verdict, and stores a base backup that verifies', async () => {
    const res = await slash(h, '/backup', 'now --physical app');
    expect(res.status).toBe(200);
    expect(res.ms).toBeLessThan(3000);
    expect((res.body as { response_type?: string }).response_type).toBe('ephemeral');
    expect(res.text).toMatch(/^Base backup of \*app\* queued: job `base-backup-app-[0-9a-f-]+`\. Progress and the result will be posted in #incidents\.$/);
    const jobId = jobIdOf(res.text) ?? '';

    const msg = await channelMessage(h, jobId, /succeeded/, 120_000);
    expect(msg.channel).toBe('C0INCIDENTS');
    expect(msg.history[0]?.text).toMatch(/^Base backup of app running \(job base-backup-app-/);
    const [b] = await listBaseBackups(h.backupDir, 'app');
    if (!b) throw new Error('no base backup stored after a successful job');
    const shown = fieldsOf(msg);
    for (const expected of [b.id, 'Size', 'Duration', b.startLsn, b.endLsn, 'encrypted with age', b.sha256.slice(0, 12), 'read back and matched']) {
      expect(shown).toContain(expected);
    }
    expect(shown).toContain('requested by <@U0ONCALL>');
    expect(msg.text).toMatch(new RegExp(`^Base backup of app succeeded: ${b.id}, .* WAL ${b.startLsn} to ${b.endLsn}, encrypted$`));
    // Called recoverable only once the archive holds its WAL (the test's worker streams it).
    expect(fieldsOf(msg)).toContain('to any moment after it ended: its WAL is archived');
    await checkStored(b);
    // While it ran, the message said how much of the cluster had been streamed; the details are in its thread.
    expect(msg.history.map((v) => v.text)).toContain(`Base backup of app running (job ${jobId})`);
    expect(msg.history.some((v) => /of the cluster streamed/.test(JSON.stringify(v.blocks)))).toBe(true);
    const thread = [...h.slack.messages.values()].filter((m) => m.thread_ts === msg.ts).map((m) => m.text ?? '');
    expect(thread.join('\n')).toContain(`sha256 ${b.sha256}`);

    // The command and the finished job are in the audit trail.
    await new Promise((r) => setTimeout(r, 200));
    const audit = await auditLines(h);
    expect(audit.find((e) => e.kind === 'command' && e.args === 'now --physical app')).toMatchObject({ decision: 'allowed', jobId });
    expect(audit.find((e) => e.kind === 'job' && e.jobId === jobId)?.result).toMatch(/^completed: \{"baseBackupId":"app-base-/);
  }, 180_000);

  it('answers a second request while one runs with the running job id: two base backups of a target never overlap', async () => {
    const [a, b] = await Promise.all([slash(h, '/backup', 'now --physical app'), slash(h, '/backup', 'now app --physical', { userId: 'U0OTHER' })]);
    const id = jobIdOf(a.text);
    expect(id).toMatch(/^base-backup-app-/);
    expect(jobIdOf(b.text)).toBe(id);
    expect(a.text + b.text).toMatch(
      /A base backup of \*app\* is already queued or running: job `base-backup-app-[^`]+`\. Its result will be posted in #incidents; no second one was started\./,
    );
    await channelMessage(h, id ?? '', /succeeded/, 120_000);
  }, 180_000);

  it('answers a target without point-in-time recovery with one sentence, starting nothing', async () => {
    const res = await slash(h, '/backup', 'now --physical plain');
    expect(res.text).toBe(
      '*plain* has no point-in-time recovery (no `pitr` section in the config file), so it has no base backups: `/backup now plain` takes a logical backup. Nothing was started.',
    );
    // No job for it (the previous test's job may still be posting its thread replies, so not "no active job").
    const jobs = await h.service.deps.queues.baseBackup.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed']);
    expect(jobs.filter((j) => j.data.target === 'plain')).toEqual([]);
  });

  it('pages pg-backup-bot/<target>/base-backup when the role may not replicate, and the next good one resolves it', async () => {
    const failed = jobIdOf((await slash(h, '/backup', 'now --physical flaky')).text) ?? '';
    const msg = await channelMessage(h, failed, /FAILED/, 60_000);
    expect(msg.text).toMatch(
      /^Base backup of flaky FAILED: The base backup of flaky failed: the role has no REPLICATION attribute: `ALTER ROLE … REPLICATION`/,
    );
    expect(fieldsOf(msg)).toMatch(/PagerDuty page queued \(error, dedup key pg-backup-bot\/flaky\/base-backup\)/);
    expect(fieldsOf(msg)).not.toMatch(/at .*\.ts:\d+/);
    const trigger = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/flaky/base-backup', 30_000);
    expect(trigger.payload?.severity).toBe('error');
    expect(trigger.payload?.custom_details).toMatchObject({ jobId: failed, target: 'flaky' });
    expect(await listBaseBackups(h.backupDir, 'flaky')).toEqual([]);
    // Health shows it too, under the same condition.
    expect((await slash(h, '/backup', 'health flaky')).text).toMatch(
      /base backup failed or too old: last run failed at .*the role has no REPLICATION attribute/,
    );

    await withClient(pg.url, (c) => c.query(`ALTER ROLE ${ROLE} REPLICATION`));
    const ok = jobIdOf((await slash(h, '/backup', 'now --physical flaky')).text) ?? '';
    await channelMessage(h, ok, /succeeded/, 120_000);
    const resolve = await h.pd.waitFor((e) => e.event_action === 'resolve' && e.dedup_key === 'pg-backup-bot/flaky/base-backup', 30_000);
    expect(resolve.dedup_key).toBe('pg-backup-bot/flaky/base-backup');
    expect(h.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/flaky/base-backup').map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
    const [b] = await listBaseBackups(h.backupDir, 'flaky');
    if (!b) throw new Error('no base backup of flaky after the good run');
    await checkStored(b);
    expect((await slash(h, '/backup', 'health flaky')).text).toMatch(/:white_check_mark: base backup: newest flaky-base-/);
    // And /metrics carries the verdict the PgBaseBackupFailing rule reads.
    const metrics = await (await fetch(`${h.metricsUrl}/metrics`)).text();
    expect(metrics).toContain('pgbb_condition_failing{target="flaky",condition="base-backup"} 0');
    expect(metrics).not.toContain('target="plain",condition="base-backup"');
  }, 240_000);

  it('plans the weekly schedule into Redis, shows it in /backup status, and its job runs through the worker', async () => {
    await syncSchedulers(h.service.deps.queues, h.config, h.service.deps.log);
    const status = (await slash(h, '/backup', 'status')).text;
    expect(status).toMatch(/\*app\*\n(• .*\n)*• base backup \(point-in-time recovery\): every Sunday at 01:00 — next Sun \d{4}-\d\d-\d\d 01:00 UTC\+00:00/);
    expect(status).not.toMatch(/not in Redis/);
    expect(
      plannedSchedulers(h.config)
        .filter((p) => p.queue === 'base-backup')
        .map((p) => p.id),
    ).toEqual(['pgbb:base-backup:app', 'pgbb:base-backup:flaky']);
    // The scheduler's own pending job, waiting for Sunday, is run now: what Sunday 01:00 would run.
    const queue = h.service.deps.queues.baseBackup;
    const pending = (await queue.getDelayed()).find((j) => j.repeatJobKey === 'pgbb:base-backup:app');
    if (!pending?.id) throw new Error('the base-backup scheduler has no pending job');
    const before = (await listBaseBackups(h.backupDir, 'app')).length;
    // A manual one runs when Sunday comes: the schedule's job waits for it (the per-target lock), never beside it.
    const manual = jobIdOf((await slash(h, '/backup', 'now --physical app')).text) ?? '';
    await channelMessage(h, manual, /running/, 30_000);
    await pending.promote();
    const msg = await channelMessage(h, pending.id, /succeeded/, 120_000);
    await channelMessage(h, manual, /succeeded/, 120_000);
    expect(fieldsOf(msg)).toContain('scheduled by `base-backup`');
    expect(fieldsOf(msg)).toContain('requested by the schedule');
    const after = await listBaseBackups(h.backupDir, 'app');
    expect(after).toHaveLength(before + 2);
    const [first, second] = after.slice(-2) as [BaseBackup, BaseBackup];
    expect(Date.parse(second.startedAt)).toBeGreaterThanOrEqual(Date.parse(first.finishedAt));
    expect(fieldsOf(msg)).toContain(second.id);
    await checkStored(second);
  }, 180_000);
});
