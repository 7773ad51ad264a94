import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralRedis, type EphemeralRedis } from '../../src/dev/ephemeral.ts';
import { plannedSchedulers } from '../../src/schedules/sync.ts';
import { PLAN_DEDUP_KEY } from '../../src/workers/plan-keeper.ts';
import { gapSize, planGap, type PlanGap } from '../../src/workers/redis-plan.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * Redis restarted empty under a running bot and worker (no persistence, a failover to a replica without the keys,
 * a FLUSHALL): every job scheduler and queue limit is gone and BullMQ never puts them back. The worker notices
 * (reconnect, periodic check), restores the plan, says so once, and pages when Redis will not take it back.
 */

let redis: EphemeralRedis;
let h: Harness;
let configFile: string;
let locker: pg.Client | undefined;

// A backup every minute, so "a scheduled job fires at its time" is seen within the test.
const CONFIG = `timezone: UTC
targets:
  - name: shop
    urlEnv: DATABASE_URL
    environment: production
    schedules:
      backups:
        minutely: { cron: '* * * * *', retentionClass: frequent, keepDays: 1 }
`;

const gap = () => planGap({ config: h.config, queues: h.service.deps.queues, log: h.service.deps.log });

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err; // Redis is restarting
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
}

const whole = async (): Promise<PlanGap | undefined> => {
  const g = await gap();
  return gapSize(g) === 0 ? g : undefined;
};

beforeAll(async () => {
  redis = await startEphemeralRedis();
  configFile = join(tmpdir(), `pgbb-redis-loss-${process.pid}-${Date.now()}.yml`);
  await writeFile(configFile, CONFIG);
  h = await startHarness({
    pgUrl: inject('pgUrl'),
    redisUrl: redis.url,
    // No first backup at start: the test decides which backup is running when Redis goes.
    env: { BOT_CONFIG: configFile, FIRST_BACKUP_AT_START: 'false' },
    workerOptions: { schedules: true, planCheckMs: 2000 },
  });
}, 120_000);

afterAll(async () => {
  // A failed run may leave the backup's lock held: release it first, or dropping the source database waits on it.
  await locker?.end().catch(() => undefined);
  await h?.stop();
  await redis?.stop();
  await rm(configFile, { force: true });
});

describe('when Redis restarts empty under a running bot and worker', () => {
  it('puts back every scheduler and queue limit within 60 s, says so once, and a scheduled backup fires at its time', async () => {
    const planned = plannedSchedulers(h.config).map((p) => p.id);
    expect(planned).toContain('pgbb:backup:shop:minutely');
    expect(gapSize(await gap())).toBe(0);

    // A backup running when Redis goes: held at its snapshot by a lock, so it is still running then.
    locker = new pg.Client({ connectionString: h.source.url });
    await locker.connect();
    locker.on('error', () => undefined); // the source database is dropped with force at the end
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE shop.customers IN ACCESS EXCLUSIVE MODE');
    const running = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await until('the backup running', async () => ((await h.service.deps.queues.backup.getJobState(running)) === 'active' ? true : undefined), 30_000);
    // A failed run in the run log (another target's, which nothing runs here): it must read as failed after the loss.
    const failedAt = new Date();
    await h.service.deps.runs.record('ghost', { ok: false, at: failedAt, reason: 'the server refused the connection', jobId: 'backup-ghost-1' });
    // The plan keeper reads Redis every 2 s here (30 s by default): let it see the running job.
    await new Promise((r) => setTimeout(r, 2500));

    await redis.stop();
    const killedAt = Date.now();
    redis = await startEphemeralRedis({ port: redis.port });
    const raw = h.service.deps.workerRedis;
    // The bot's connection is on the new, empty server (which the plan keeper may already have refilled).
    const uptime = await until('the bot reconnected', async () => Number(/uptime_in_seconds:(\d+)/.exec(await raw.info('server'))?.[1]), 10_000);
    expect(uptime).toBeLessThan(30);

    await until('the plan restored', whole, 60_000);
    const restoredMs = Date.now() - killedAt;
    expect(restoredMs).toBeLessThan(60_000);
    const q = h.service.deps.queues;
    expect(await q.pagerduty.getGlobalConcurrency()).toBe(1);
    expect(await q.retention.getGlobalConcurrency()).toBe(1);
    expect((await q.health.getJobScheduler('health'))?.every).toBe(15 * 60_000);

    const told = await until('the channel told', async () => [...h.slack.messages.values()].find((m) => /Redis lost its data/.test(m.text ?? '')), 10_000);
    expect(told.text).toMatch(/it restarted empty/);
    expect(told.text).toMatch(/schedules restored: \d+ job schedulers and the queue limits \(pagerduty, retention/);
    expect(told.text).toMatch(/What was lost with it, as last seen intact at/);
    expect(told.text).toContain(`a backup job of shop was running (${running}): its worker goes on and posts its own verdict`);
    // The run log is put back (QA: "no backup run recorded" beside a page still open for the failed backup).
    expect(told.text).toMatch(/the run log's (\d+) last runs? \(backups, base backups, restore tests\): \1 put back, so health judges them as before\n/);
    expect(await h.service.deps.runs.last('ghost')).toEqual({ ok: false, at: failedAt, reason: 'the server refused the connection', jobId: 'backup-ghost-1' });
    // And it does: the dump goes on once the lock is gone, although BullMQ lost the job (no crash on its progress).
    await locker.query('ROLLBACK');
    await locker.end();
    await channelMessage(h, running, /succeeded/, 60_000);

    // /backup status shows the schedulers as BullMQ holds them, none flagged.
    const status = (await slash(h, '/backup', 'status')).text;
    expect(status).toMatch(/minutely backup[^\n]*— next /);
    expect(status).not.toMatch(/not in Redis/);

    // The restored minutely scheduler fires at its minute, and the backup it makes succeeds.
    const fired = await until(
      'a scheduled backup after the restart',
      async () => {
        const jobs = (await q.backup.getJobs(['active', 'completed'])) as Job[];
        return jobs.find((j) => j.repeatJobKey === 'pgbb:backup:shop:minutely' && j.timestamp > killedAt);
      },
      75_000,
    );
    const slot = fired.opts.prevMillis ?? 0;
    expect(slot % 60_000).toBe(0);
    expect(slot).toBeGreaterThan(killedAt);
    await channelMessage(h, fired.id ?? '', /succeeded/, 60_000);
    // Told once, although the periodic check and the reconnect of two connections all saw the loss.
    await new Promise((r) => setTimeout(r, 4000));
    expect([...h.slack.messages.values()].filter((m) => /Redis lost its data/.test(m.text ?? ''))).toHaveLength(1);
  }, 180_000);

  it('pages (its own dedup key) when Redis will not take the plan back, flags it in /backup status, and resolves once it does', async () => {
    const admin = h.service.deps.workerRedis;
    await admin.config('SET', 'maxmemory', '1');
    await admin.flushall();
    try {
      const trigger = await h.pd.waitFor((e) => e.dedup_key === PLAN_DEDUP_KEY && e.event_action === 'trigger', 30_000);
      expect(trigger.payload?.severity).toBe('critical');
      expect(trigger.payload?.summary).toMatch(/missing from Redis and not restorable/);
      await until('the channel told', async () => [...h.slack.messages.values()].find((m) => /could not be restored/.test(m.text ?? '')), 10_000);
      const status = (await slash(h, '/backup', 'status')).text;
      expect(status).toMatch(/minutely backup[^\n]*not in Redis: it will not run/);
      expect(status).toMatch(/planned schedules are missing from Redis/);
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
    await h.pd.waitFor((e) => e.dedup_key === PLAN_DEDUP_KEY && e.event_action === 'resolve', 30_000);
    await until('the plan restored', whole, 30_000);
    await until(
      'the channel told',
      async () => [...h.slack.messages.values()].find((m) => /Every planned schedule is in Redis again/.test(m.text ?? '')),
      10_000,
    );
    // The page went once, whatever the number of checks that saw the gap.
    expect(h.pd.events.filter((e) => e.dedup_key === PLAN_DEDUP_KEY && e.event_action === 'trigger')).toHaveLength(1);
  }, 120_000);
});
