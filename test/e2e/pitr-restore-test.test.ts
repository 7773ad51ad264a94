import { createHash } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, Queue, UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RestoreTestJobData } from '../../src/jobs/queues.ts';
import { restoreTestProcessor } from '../../src/workers/restore-test-worker.ts';
import { findAgeEngine } from '../../src/crypto/age-cli.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { runBaseBackup } from '../../src/postgres/pitr/base-backup.ts';
import { LocalWalStore } from '../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../src/postgres/tools.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { auditLines, channelMessage, type Harness, jobIdOf, slash, startHarness } from './harness.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let h: Harness;
let source: EphemeralPostgres;
let cfg: string;

beforeAll(async () => {
  // A cluster of its own: a base backup of the shared test server would copy every other test's databases.
  source = await startEphemeralPostgres({ settings: { full_page_writes: 'on' } });
  cfg = join(tmpdir(), `pgbb-pitrtest-${process.pid}-${Date.now()}.yml`);
  await writeFile(
    cfg,
    'encryption: age\ntargets:\n  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n    pitr: { urlEnv: SHOP_REPLICATION_URL, markers: { everySeconds: 5 }, baseBackup: { afterBreak: false } }\n',
  );
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: inject('redisUrl'),
    env: { BOT_CONFIG: cfg, SHOP_URL: source.url, SHOP_REPLICATION_URL: source.url },
  });
}, 120_000);

afterAll(async () => {
  await h?.stop();
  await source?.stop();
  await rm(cfg, { force: true });
});

/** Ends the current segment and waits until the bot's archive holds it. */
async function switchAndWait(): Promise<void> {
  const name = await withClient(source.url, async (c) => {
    // The segment the switch completed (or, with nothing written since the last switch, the one before).
    const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    return rows[0]?.name as string;
  });
  const store = new LocalWalStore(h.backupDir, 'shop');
  for (let i = 0; !(await store.entry(name)); i++) {
    if (i > 600) throw new Error(`WAL ${name} never archived`);
    await sleep(100);
  }
}

describe('/restore-test pitr, as the bot runs it', () => {
  it('refuses at once while nothing is recoverable, saying how to take a base backup', async () => {
    // Nothing recoverable yet: no base backup.
    expect((await slash(h, '/restore-test', 'pitr shop latest')).text).toMatch(/shop has no base backup yet: take one with `pg-backup-bot base-backup shop`/);
  });

  it('restores the latest moment into a scratch cluster, posts each check and the RTO by phase, and removes the cluster', async () => {
    const tools = await findPgTools({ serverMajor: 15 });
    await runBaseBackup({
      target: 'shop',
      root: h.backupDir,
      replicationUrl: source.url,
      pgBasebackup: (await findPgProgram('pg_basebackup', tools.pgDump, tools.major)) as string,
      zstd: 'zstd',
      level: 2,
      recipients: h.config.encryption.recipients,
      ageEngine: await findAgeEngine(),
    });
    await withClient(source.url, (c) => c.query('CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)'));
    // Markers every 5 s: a few of them before the moment tested.
    await sleep(11_000);
    await switchAndWait();

    const outside = await slash(h, '/restore-test', 'pitr shop 2099-01-01 00:00:00+00');
    expect(outside.text).toMatch(/is outside what the archive holds: the recoverable window is \S+ to \S+/);
    expect((await slash(h, '/restore-test', 'pitr shop 2026-12-03 14:30')).text).toMatch(/has no UTC offset/);

    const reply = await slash(h, '/restore-test', 'pitr shop latest');
    expect(reply.text).toMatch(/^PITR restore test of \*shop\* to the latest moment queued: job `/);
    const jobId = jobIdOf(reply.text) as string;
    // Asked again for another moment while it is queued or running: that one is named, and this one said not queued (QA).
    const again = await slash(h, '/restore-test', 'pitr shop random');
    expect(again.text).toBe(
      `A PITR restore test of *shop* is already queued or running (to the latest moment): job \`${jobId}\`. Its verdict will be posted in ${h.config.slack.channel}. This one, to a random moment of the window, was not queued: ask again once that verdict is posted.`,
    );
    const verdict = await channelMessage(h, jobId, /PITR restore test of shop (passed|FAILED)/, 180_000);
    const blocks = JSON.stringify(verdict.blocks);
    expect(verdict.text, blocks).toMatch(/^PITR restore test of shop passed \(recovered to \d{4}-/);
    for (const check of [
      'WAL archive',
      'base backup (pg_verifybackup)',
      'recovery reached its target',
      'pg_amcheck, every database',
      'exact point (markers)',
    ]) {
      expect(blocks).toContain(`:white_check_mark: *${check}*:`);
    }
    expect(blocks).toMatch(/marker\(s\) written before the target present/);
    expect(blocks).toMatch(/RTO \(fetch \+ replay \+ checks\)/);
    expect(blocks).toContain('scratch cluster removed');
    const label = createHash('sha256').update(jobId).digest('hex').slice(0, 12);
    expect((await readdir(tmpdir())).filter((n) => n.startsWith('pgbb-pitr-test-') && n.includes(`-${label}-`))).toEqual([]);
    // Nothing paged for a pass; the request is in the audit trail with who asked.
    expect(h.pd.events.filter((e) => String(e.dedup_key).endsWith('/pitr-restore-test'))).toEqual([]);
    expect((await slash(h, '/backup', 'health shop')).text).toMatch(/:white_check_mark: last PITR restore test: passed at .*\(job /);
    const audit = await auditLines(h);
    expect(audit.find((a) => a.what === '/restore-test' && a.args === 'pitr shop latest' && a.jobId === jobId)).toMatchObject({
      decision: 'allowed',
      userName: 'oncall',
    });
  }, 240_000);

  it('a segment missing from the archive fails the test, naming it, and pages pg-backup-bot/shop/pitr-restore-test', async () => {
    await switchAndWait();
    await withClient(source.url, (c) => c.query('INSERT INTO orders SELECT generate_series(101, 200)'));
    await switchAndWait();
    // The one lost has a segment with WAL written after the base backup's end before it: a window before the gap,
    // whatever the timing (the segment the base backup's own switch completed may hold WAL up to a moment before its
    // finish: then nothing before the gap is recoverable, and the test is refused instead: planPitrTest names the gap).
    await withClient(source.url, (c) => c.query('INSERT INTO orders SELECT generate_series(201, 300)'));
    await switchAndWait();
    const store = new LocalWalStore(h.backupDir, 'shop');
    const victim = (await store.list()).filter((e) => !e.name.endsWith('.history')).at(-2);
    if (!victim) throw new Error('fewer than two segments archived');
    await unlink(join(store.dir, victim.file));
    await unlink(join(store.dir, `${victim.name}.json`));
    const jobId = jobIdOf((await slash(h, '/restore-test', 'pitr shop latest')).text) as string;
    const verdict = await channelMessage(h, jobId, /PITR restore test of shop (passed|FAILED)/, 180_000);
    expect(verdict.text).toMatch(
      new RegExp(
        `^PITR restore test of shop FAILED: WAL archive: segment ${victim.name} is missing from the archive \\(the last one before it, [0-9A-F]{24}, holds WAL up to `,
      ),
    );
    const page = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/pitr-restore-test', 30_000);
    expect(page.payload?.severity).toBe('critical');
    expect(String(page.payload?.summary)).toContain(`segment ${victim.name} is missing`);
    // /backup health does not call the target healthy while that page is open, and /metrics carries the verdict.
    const health = (await slash(h, '/backup', 'health shop')).text;
    expect(health).toMatch(new RegExp(`last PITR restore test failed: failed at .*: WAL archive: segment ${victim.name} is missing`));
    expect(health).toContain('`/restore-test pitr shop` runs it again');
    const metrics = await (await fetch(`${h.metricsUrl}/metrics`)).text();
    expect(metrics).toContain('pgbb_condition_failing{target="shop",condition="pitr-test-failing"} 1');
    // Told once, by the worker: a health run does not page it a second time, under this key or another.
    const run = await h.service.deps.queues.health.add('health', {});
    for (let i = 0; !((await run.isCompleted()) || (await run.isFailed())); i++) {
      if (i > 300) throw new Error('the health job never finished');
      await sleep(100);
    }
    expect(h.pd.events.filter((e) => e.event_action === 'trigger' && String(e.dedup_key).includes('/shop/pitr-')).map((e) => e.dedup_key)).toEqual([
      'pg-backup-bot/shop/pitr-restore-test',
    ]);
  }, 240_000);

  it('the first-Saturday restore test of a PITR target also queues a PITR test of it, to a random moment', async () => {
    const d = h.service.deps;
    const scratch = new Queue<RestoreTestJobData>(`test-${randomUUID()}`, { connection: d.workerRedis, prefix: h.config.queuePrefix });
    try {
      const run = restoreTestProcessor({
        config: d.config,
        storage: d.storage,
        notifier: d.notifier,
        escalation: d.escalation,
        log: d.log,
        pitrQueue: scratch,
      });
      const data: RestoreTestJobData = {
        target: 'shop',
        requestedBy: { source: 'schedule', userName: 'schedule restore-test' },
        schedule: { rule: 'first-saturday' },
      };
      const job = await Job.create(scratch, 'scheduled-restore-test', data, { prevMillis: new Date('2026-12-05T02:00:00Z').getTime() });
      // No logical backup of shop here: that test cannot run (said and paged), the PITR one is queued all the same.
      await expect(run(job)).rejects.toBeInstanceOf(UnrecoverableError);
      const queued = (await scratch.getWaiting()).filter((j) => j.data.pitr);
      expect(queued.map((j) => j.data)).toEqual([
        { target: 'shop', requestedBy: { source: 'schedule', userName: 'schedule restore-test' }, pitr: { at: 'random' } },
      ]);
    } finally {
      await scratch.obliterate({ force: true }).catch(() => undefined);
      await scratch.close();
    }
  }, 60_000);
});
