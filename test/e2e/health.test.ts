import { mkdir, rename, rm, symlink, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { formatCount } from '../../src/format.ts';
import { createHealthState } from '../../src/health/state.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import { healthProcessor } from '../../src/workers/health-worker.ts';
import { runSql } from '../support/databases.ts';
import { jobIdOf, slash, startHarness, type Harness } from './harness.ts';

let h: Harness;
let clock = new Date();
const HOUR = 3600_000;

/**
 * `/backup now`, waited for until its job has finished. The previous backup's manifest is listed a moment before its
 * job ends (the verdict is posted after it): a `/backup now` in that moment is answered as a duplicate of it, so it is
 * asked again until a new job is queued.
 */
async function backup(): Promise<Manifest> {
  const end = Date.now() + 90_000;
  let reply = await slash(h, '/backup', 'now');
  while (/already queued or running/.test(reply.text) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    reply = await slash(h, '/backup', 'now');
  }
  expect(reply.text).toMatch(/^Backup of \*shop\* queued/);
  const job = await h.service.deps.queues.backup.getJob(jobIdOf(reply.text) ?? '');
  while (Date.now() < end) {
    const state = await job?.getState();
    if (state === 'completed') return (await h.service.deps.storage.list('shop'))[0] as Manifest;
    if (state === 'failed' || state === undefined) throw new Error(`the backup job ended ${state ?? 'missing'}: ${job?.failedReason}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('backup did not finish in 90 s');
}

/** The health job as the scheduler runs it, with a controllable clock and, optionally, other thresholds. */
function runHealth(health?: Partial<Config['health']['thresholds']>) {
  const d = h.service.deps;
  const config = health ? { ...d.config, health: { ...d.config.health, thresholds: { ...d.config.health.thresholds, ...health } } } : d.config;
  const process = healthProcessor({
    config,
    storage: d.storage,
    runs: d.runs,
    // A new state object per run: what holds across runs is Redis, as across worker restarts.
    state: createHealthState(d.workerRedis, d.config.queuePrefix),
    backupQueue: d.queues.backup,
    notifier: d.notifier,
    escalation: d.escalation,
    log: d.log,
    now: () => clock,
  });
  return process({ id: `health-${Date.now()}` } as Job);
}

/** The disk is paged once for every target writing to it, under its storage's name; the other conditions per target. */
const subject = (condition: string) => (condition === 'disk' ? h.service.deps.storage.describe() : 'shop');
const pages = (condition: string, action: string) =>
  h.pd.events.filter((e) => e.dedup_key === `pg-backup-bot/${subject(condition)}/${condition}` && e.event_action === action);
const posts = (pattern: RegExp) => [...h.slack.messages.values()].filter((m) => pattern.test(m.text ?? ''));

async function settle(condition: string, action: string, n: number) {
  const end = Date.now() + 30_000;
  while (pages(condition, action).length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await h?.stop();
});

describe('health conditions and the PagerDuty lifecycle', () => {
  let first: Manifest;

  it('stale: pages once when the newest backup passes 25 h, not again across restarts, resolves when a fresh one lands', async () => {
    first = await backup();
    clock = new Date(new Date(first.startedAt).getTime() + 24 * HOUR + 59 * 60_000);
    expect((await runHealth()).failing).not.toContain('shop/stale');
    clock = new Date(new Date(first.startedAt).getTime() + 25 * HOUR + 60_000);
    expect((await runHealth()).failing).toContain('shop/stale');
    await runHealth();
    await runHealth();
    await settle('stale', 'trigger', 1);
    expect(pages('stale', 'trigger')).toHaveLength(1);
    expect(pages('stale', 'trigger')[0]?.payload?.severity).toBe('critical');
    expect(posts(/shop: backup too old/)).toHaveLength(1);

    clock = new Date(new Date(first.startedAt).getTime() + HOUR);
    expect((await runHealth()).failing).not.toContain('shop/stale');
    await settle('stale', 'resolve', 1);
    expect(pages('stale', 'resolve')).toHaveLength(1);
    expect(posts(/backup too old cleared/)).toHaveLength(1);
  });

  it('size: a backup under half the median of the previous ones pages a warning, and clears', async () => {
    for (let i = 0; i < 3; i++) await backup();
    await runSql(h.source.url, 'TRUNCATE shop.orders, shop.order_items, shop.delivery_slots, shop.customers CASCADE');
    const small = await backup();
    clock = new Date(new Date(small.startedAt).getTime() + 60_000);
    const r = await runHealth();
    expect(r.failing).toContain('shop/size');
    await settle('size', 'trigger', 1);
    expect(pages('size', 'trigger')[0]?.payload?.severity).toBe('warning');
    expect(posts(/size anomaly/)[0]?.text).toMatch(/% vs median/);
    // Raising the bar back (a team decides the new size is normal): the condition clears and the page resolves.
    expect((await runHealth({ sizeLowRatio: 0.01 })).failing).not.toContain('shop/size');
    await settle('size', 'resolve', 1);
    expect(pages('size', 'resolve')).toHaveLength(1);
  }, 120_000);

  it('damaged: a stored backup cut short pages (error) with its id and why, is named by /backup health and list, and clears once removed', async () => {
    const [, older] = await h.service.deps.storage.list('shop');
    if (!older) throw new Error('no second backup');
    const dir = join(h.service.deps.config.backupDir, 'shop', older.backupId);
    const artifact = older.artifacts.find((a) => a.role === 'database')?.file ?? '';
    await truncate(join(dir, artifact), 10);
    // Damage in place (the directory unchanged) shows within the listing's recheck interval (10 s).
    const end = Date.now() + 20_000;
    while (!h.service.deps.storage.damaged?.('shop').length && Date.now() < end) {
      await h.service.deps.storage.list('shop');
      await new Promise((r) => setTimeout(r, 250));
    }
    const r = await runHealth();
    expect(r.failing).toContain('shop/damaged');
    await settle('damaged', 'trigger', 1);
    const page = pages('damaged', 'trigger')[0];
    expect(page?.payload?.severity).toBe('error');
    expect(page?.payload?.summary).toBe('1 stored backup of shop is damaged and cannot be restored');
    expect(posts(/shop: stored backups damaged/)[0]?.text).toContain(
      `${older.backupId} (artifact ${artifact} is 10 bytes where its manifest records ${formatCount(older.artifacts.find((a) => a.file === artifact)?.bytes ?? 0)} bytes (cut short or overwritten))`,
    );
    expect((await slash(h, '/backup', 'health shop')).text).toContain(`stored backups damaged: ${older.backupId}`);
    expect((await slash(h, '/backup', 'list shop')).text).toMatch(new RegExp(`1 backup is not listed, damaged .*${older.backupId}`));
    await rm(dir, { recursive: true, force: true });
    expect((await runHealth()).failing).not.toContain('shop/damaged');
    await settle('damaged', 'resolve', 1);
    expect(pages('damaged', 'resolve')).toHaveLength(1);
  });

  it('disk and slow cross their thresholds both ways', async () => {
    expect((await runHealth({ diskFreeMinRatio: 1.01, slowMs: 1 })).failing).toEqual(expect.arrayContaining(['shop/disk', 'shop/slow']));
    // `/backup health` names the one disk behind the target's ⚠️ line while it fails, and stops once it has room.
    const diskLine = `:warning: *Backup disk ${subject('disk')}* (one page for every target that writes to it): `;
    expect((await slash(h, '/backup', 'health')).text).toContain(diskLine);
    expect((await runHealth({ diskFreeMinRatio: 0, slowMs: 2 * HOUR })).failing).not.toEqual(expect.arrayContaining(['shop/disk']));
    expect((await slash(h, '/backup', 'health')).text).not.toContain(diskLine);
    await settle('disk', 'resolve', 1);
    await settle('slow', 'resolve', 1);
    for (const c of ['disk', 'slow']) {
      const seq = h.pd.events.filter((e) => e.dedup_key === `pg-backup-bot/${subject(c)}/${c}`).map((e) => e.event_action);
      expect(seq).toEqual(['trigger', 'resolve']);
    }
    // Never under the target's own key: a disk under 20 targets would have been 20 pages.
    expect(h.pd.events.filter((e) => e.dedup_key === 'pg-backup-bot/shop/disk')).toEqual([]);
  });

  it('delivers trigger then resolve in order even while PagerDuty answers 500', async () => {
    h.pd.failNext(3, 500);
    await runHealth({ diskFreeMinRatio: 1.01 });
    await runHealth({ diskFreeMinRatio: 0 });
    await settle('disk', 'resolve', 2);
    const seq = h.pd.events.filter((e) => e.dedup_key === `pg-backup-bot/${subject('disk')}/disk`).map((e) => e.event_action);
    expect(seq).toEqual(['trigger', 'resolve', 'trigger', 'resolve']);
  }, 60_000);

  it('/backup health shows every condition with its evidence', async () => {
    const { text } = await slash(h, '/backup', 'health');
    // Each condition by the heading of its state: the failure's label when failing, what it watches when passing.
    for (const [failing, passing] of [
      ['backup too old', 'backup age'],
      ['backup size anomaly', 'backup size'],
      ['backup too slow', 'backup duration'],
      ['backup disk short of space', 'backup disk'],
      ['last backup failed', 'last backup'],
      ['last restore test failed', 'last restore test'],
    ])
      expect(text.includes(`${failing}:`) || text.includes(`${passing}:`), failing).toBe(true);
    // Never the wrong way round: a passing line does not carry a failure's label.
    expect(text).not.toMatch(
      /:white_check_mark: (backup too old|backup size anomaly|backup too slow|backup disk short of space|last backup failed|last restore test failed):/,
    );
    expect(text).toMatch(/since/);
  });

  it('serves /metrics that a Prometheus text-format parser reads', async () => {
    const res = await fetch(`${h.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    const families = parsePrometheusTextFormat(await res.text());
    const byName = new Map(families.map((f) => [f.name, f]));
    const lastGood = byName.get('pgbb_last_good_backup_timestamp_seconds')?.metrics.find((m) => m.labels?.target === 'shop');
    expect(Number(lastGood?.value)).toBeGreaterThan(1.7e9);
    expect(byName.get('pgbb_last_backup_size_bytes')?.type).toBe('GAUGE');
    expect(byName.get('pgbb_queue_jobs')?.metrics.some((m) => m.labels?.queue === 'backup')).toBe(true);
    expect(byName.get('pgbb_condition_failing')?.metrics.some((m) => m.labels?.condition === 'stale')).toBe(true);
    expect((await fetch(`${h.metricsUrl}/healthz`)).status).toBe(200);
  });

  it('counts the channel posts Slack refused in /metrics, as Redis counts them for every process (an earlier note: no series for them)', async () => {
    const failures = async () => {
      const families = parsePrometheusTextFormat(await (await fetch(`${h.metricsUrl}/metrics`)).text());
      const f = families.find((x) => x.name === 'pgbb_slack_post_failures_total');
      expect(f?.type).toBe('COUNTER');
      return Number(f?.metrics[0]?.value);
    };
    const before = await failures();
    // The Web API client tries a call 4 times: the post fails as a whole, as through a Slack outage.
    h.slack.rateLimitNext(4, 1, 'chat.postMessage');
    await expect(h.service.deps.notifier.post({ text: 'a post Slack refuses' })).rejects.toThrow();
    expect(await failures()).toBe(before + 1);
  });

  it('serves them on a listener of their own, on 127.0.0.1 by default: the port Slack reaches answers neither', async () => {
    expect(h.config.metrics.host).toBe('127.0.0.1');
    for (const path of ['/metrics', '/healthz']) {
      const onSlackPort = await fetch(h.eventsUrl.replace('/slack/events', path));
      expect(onSlackPort.status, path).toBe(404);
      expect(await onSlackPort.text()).not.toContain('pgbb_');
    }
    const other = await fetch(`${h.metricsUrl}/slack/events`, { method: 'POST' });
    expect(other.status).toBe(404);
  });

  it('check CLI speaks Nagios: exit 2 with a critical condition, 0 when all is well', async () => {
    const env = {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: h.source.url,
      TARGET_NAME: 'shop',
      BACKUP_DIR: h.backupDir,
      REDIS_URL: inject('redisUrl'),
      QUEUE_PREFIX: h.config.queuePrefix,
    };
    const ok = await execa('node', ['bin/pg-backup-bot.js', 'check'], { env, extendEnv: false, reject: false });
    expect(ok.stdout).toMatch(/^(OK|WARNING) shop /m);
    expect([0, 1]).toContain(ok.exitCode);
    const gone = await execa('node', ['bin/pg-backup-bot.js', 'check'], {
      env: { ...env, BACKUP_DIR: `${h.backupDir}-empty` },
      extendEnv: false,
      reject: false,
    });
    expect(gone.exitCode).toBe(2);
    // The cause first (no such BACKUP_DIR), then what it makes of the target.
    expect(gone.stdout.split('\n').slice(0, 2)).toEqual([
      expect.stringMatching(/^CRITICAL storage: BACKUP_DIR .*-empty does not exist/),
      expect.stringMatching(/^CRITICAL shop stale/),
    ]);
    // A check that cannot start is UNKNOWN with why on stdout, which Nagios shows (QA: exit 1, stdout empty).
    const unset = await execa('node', ['bin/pg-backup-bot.js', 'check'], { env: { PATH: env.PATH }, extendEnv: false, reject: false });
    expect(unset.exitCode).toBe(3);
    expect(unset.stdout).toMatch(/^UNKNOWN config: pg-backup-bot cannot start; .*DATABASE_URL: required/);
  });

  it('a backup directory that cannot be read: /backup health names it per target (not Redis), /metrics still answers, `list` says which path (QA)', async () => {
    // Last in this file: shop's directory turned into a symlink loop (as root, a mode cannot refuse; ELOOP can).
    const dir = join(h.backupDir, 'shop');
    await mkdir(dir, { recursive: true });
    // Checked once while readable: its verdicts are stored.
    clock = new Date();
    await runHealth();
    await rename(dir, `${dir}.real`);
    await symlink(`${dir}.loop`, dir);
    await symlink(dir, `${dir}.loop`);
    try {
      // The backups' listing or the records' (shop/_records/…) meets the loop first: either path is shop's.
      const { text } = await slash(h, '/backup', 'health shop');
      expect(text).not.toMatch(/Redis/);
      expect(text).toMatch(
        /health could not be checked: cannot be checked now: The system refused to scandir \S*\/shop(\/\S*)? \(ELOOP: too many symbolic links\)/,
      );
      // Its other conditions as its last check left them, said so.
      expect(text).toMatch(/\(as last checked, \d{4}-\d\d-\d\d \d\d:\d\d UTC\)/);
      const res = await fetch(`${h.metricsUrl}/metrics`);
      expect(res.status).toBe(200);
      const failing = parsePrometheusTextFormat(await res.text()).find((f) => f.name === 'pgbb_condition_failing');
      expect(failing?.metrics.find((m) => m.labels?.target === 'shop' && m.labels?.condition === 'unchecked')?.value).toBe('1');
      const env = { PATH: process.env.PATH ?? '', BACKUP_DIR: h.backupDir };
      const list = await execa('node', ['bin/pg-backup-bot.js', 'list', 'shop'], { env, extendEnv: false, reject: false });
      expect(list.exitCode).toBe(1);
      expect(list.stderr).toMatch(
        /The system refused to scandir \S*\/shop(\/\S*)? \(ELOOP: too many symbolic links\); check that path's owner, permissions and mount\./,
      );
    } finally {
      await rm(dir, { force: true });
      await rm(`${dir}.loop`, { force: true });
      await rename(`${dir}.real`, dir);
    }
    const back = await fetch(`${h.metricsUrl}/metrics`);
    const failing = parsePrometheusTextFormat(await back.text()).find((f) => f.name === 'pgbb_condition_failing');
    expect(failing?.metrics.find((m) => m.labels?.target === 'shop' && m.labels?.condition === 'unchecked')?.value).toBe('0');
  });
});
