import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../src/config.ts';
import { createQueues, type Queues } from '../../src/jobs/queues.ts';
import { createEscalation, pageStateKey } from '../../src/notifications/escalation.ts';
import { plannedSchedulers } from '../../src/schedules/sync.ts';
import { PLAN_DEDUP_KEY, restartTime, startPlanKeeper, type PlanKeeper, type PlanKeeperDeps } from '../../src/workers/plan-keeper.ts';
import { gapSize, planGap } from '../../src/workers/redis-plan.ts';
import { planFingerprint, rivalWatch } from '../../src/workers/plan-rivals.ts';
import { until } from '../support/until.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The plan keeper (plan-keeper.ts) called directly: what it puts back when schedulers leave Redis, what it leaves
 * alone, what the channel hears when Redis lost its data, and the `_bot/schedules` page when Redis refuses the plan.
 * Each test keeps the plan under a queue prefix of its own; the periodic check is pushed out of the way (an hour),
 * so every check is one the test makes.
 */

let kit: WorkerKit;
const opened: Array<{ close(): Promise<void> | void }> = [];

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

afterAll(async () => {
  await kit?.stop();
});

/** A config and queues under a fresh prefix, as one deployment of the bot on the shared Redis. */
function deployment(connection: Redis = kit.redis): { config: Config; queues: Queues } {
  const prefix = `{pk-${randomUUID().slice(0, 8)}}`;
  const queues = createQueues(connection, prefix);
  opened.push({ close: () => queues.close() });
  return { config: { ...kit.config, queuePrefix: prefix }, queues };
}

async function keeper(d: { config: Config; queues: Queues }, over: Partial<PlanKeeperDeps> = {}): Promise<PlanKeeper> {
  const k = await startPlanKeeper({
    config: d.config,
    queues: d.queues,
    log: kit.log,
    redis: kit.redis,
    watch: [],
    escalation: kit.escalation,
    pagerDuty: kit.pagerDuty,
    notifier: kit.notifier,
    intervalMs: 3_600_000,
    ...over,
  });
  opened.push({ close: () => k.stop() });
  return k;
}

/** Every scheduler the deployment holds, with its next run and the pending job BullMQ made for it. */
async function schedulersOf(queues: Queues): Promise<Map<string, { next: number | undefined; job: string | undefined; createdAt: number | undefined }>> {
  const out = new Map<string, { next: number | undefined; job: string | undefined; createdAt: number | undefined }>();
  for (const q of [queues.backup, queues.restoreTest, queues.retention, queues.checklist, queues.health] as const) {
    const pending = await q.getJobs(['delayed', 'waiting', 'prioritized']);
    for (const s of await q.getJobSchedulers()) {
      const job = pending.find((j) => j.repeatJobKey === s.key);
      out.set(s.key, { next: s.next, job: job?.id, createdAt: job?.timestamp });
    }
  }
  return out;
}

/** Every key under the deployment's prefix deleted: what a FLUSHALL (or a Redis restarted empty) does to it. */
async function flushDeployment(config: Config): Promise<number> {
  const pattern = `${config.queuePrefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await kit.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (keys.length > 0) deleted += await kit.redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}

const posts = (re: RegExp) => [...kit.slack.messages.values()].filter((m) => !m.thread_ts && re.test(m.text ?? ''));
const planPages = () => kit.pd.events.filter((e) => e.dedup_key === PLAN_DEDUP_KEY);

describe('startPlanKeeper', () => {
  describe('when a scheduler is removed from Redis', () => {
    it('puts it back, and leaves every unchanged scheduler (its next run, its pending job) as it was', async () => {
      const d = deployment();
      const k = await keeper(d);
      const planned = plannedSchedulers(d.config).map((p) => p.id);
      const removed = planned.find((id) => id.startsWith('pgbb:backup:'));
      if (!removed) throw new Error(`no backup scheduler planned: ${planned.join(', ')}`);
      const before = await schedulersOf(d.queues);
      expect([...before.keys()].sort()).toEqual([...planned, 'health'].sort());
      // Each pending job is known, so "not re-upserted" below compares something (an upsert replaces the job).
      for (const s of before.values()) expect(s.job).toBeDefined();

      const lossPosts = posts(/Redis lost its data/).length;
      expect(await d.queues.backup.removeJobScheduler(removed)).toBe(true);
      const outcome = await k.check('periodic check');
      expect(outcome.lost).toBe(false);
      expect(outcome.before.schedulers.map((s) => s.id)).toEqual([removed]);
      expect(outcome.before.limits).toEqual([]);
      expect(outcome.after && gapSize(outcome.after)).toBe(0);

      const after = await schedulersOf(d.queues);
      expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
      for (const [id, s] of before) if (id !== removed) expect({ id, ...after.get(id) }).toEqual({ id, ...s });
      expect(after.get(removed)?.job).toBeDefined();
      expect(kit.logs.some((l) => l.includes('planned schedules were missing from Redis; restored') && l.includes(removed))).toBe(true);
      // The marker is still there: a removed scheduler is not a lost Redis, and the channel hears nothing.
      expect(posts(/Redis lost its data/)).toHaveLength(lossPosts);
    });

    it('with nothing missing, a check changes nothing', async () => {
      const d = deployment();
      const k = await keeper(d);
      const before = await schedulersOf(d.queues);
      const outcome = await k.check('periodic check');
      expect(outcome).toMatchObject({ lost: false, before: { schedulers: [], limits: [] } });
      expect(await schedulersOf(d.queues)).toEqual(before);
    });
  });

  describe('when Redis lost its data (every key of the deployment gone)', () => {
    it('restores the plan and the open-page marks, queues a health run, and of two workers noticing, one tells the channel once', async () => {
      const d = deployment();
      const openPage = 'pg-backup-bot/shop/stale';
      await kit.redis.set(pageStateKey(d.config.queuePrefix, openPage), 'triggered');
      // Two worker processes: each took its snapshot of the intact Redis at start.
      const [a, b] = [await keeper(d), await keeper(d)];
      const postsBefore = posts(/Redis lost its data/).length;

      expect(await flushDeployment(d.config)).toBeGreaterThan(0);
      const outcomes = await Promise.all([a.check('reconnect'), b.check('periodic check')]);
      expect(outcomes.some((o) => o.lost)).toBe(true);
      expect(gapSize(await planGap({ config: d.config, queues: d.queues, log: kit.log }))).toBe(0);
      expect(await kit.redis.exists(`${d.config.queuePrefix}:plan:marker`)).toBe(1);
      expect(await kit.redis.get(pageStateKey(d.config.queuePrefix, openPage))).toBe('triggered');
      const healthRuns = (await d.queues.health.getJobs(['waiting'])).filter((j) => !j.repeatJobKey);
      expect(healthRuns).toHaveLength(1);

      // Later checks, by either worker, see the marker: nothing more is said.
      expect((await a.check('periodic check')).lost).toBe(false);
      expect((await b.check('reconnect')).lost).toBe(false);
      const told = posts(/Redis lost its data/).slice(postsBefore);
      expect(told).toHaveLength(1);
      const text = told[0]?.text ?? '';
      // The shared test Redis kept running (a FLUSHALL, not a restart): its uptime is older than the snapshots.
      expect(text).toMatch(/\(FLUSHALL, or a failover to a replica without the keys\)/);
      expect(text).toMatch(/schedules restored: \d+ job schedulers and the queue limits \(pagerduty, retention: one at a time\)/);
      expect(text).toContain(`1 open page remembered (${openPage}): resolved when the condition clears`);
      expect(text).toMatch(/Noticed by the (reconnect|periodic check)\./);
    });
  });

  describe('when Redis refuses the plan (an ACL user without write permission)', () => {
    it('pages pg-backup-bot/_bot/schedules directly once and says so once; resolves and says so once the plan is whole', async () => {
      const user = `pgbb-pk-${randomBytes(4).toString('hex')}`;
      const password = randomBytes(12).toString('hex');
      await kit.redis.acl('SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all');
      const bot = new Redis(inject('redisUrl'), { username: user, password, maxRetriesPerRequest: null });
      opened.push({
        close: async () => {
          bot.disconnect();
          await kit.redis.acl('DELUSER', user);
        },
      });
      const d = deployment(bot);
      // The outbox lives in the same Redis: it refuses the page too, so the keeper pages straight to PagerDuty.
      const escalation = createEscalation({ redis: bot, queue: d.queues.pagerduty, prefix: d.config.queuePrefix, enabled: true, source: 'pg-backup-bot' });
      const k = await keeper(d, { redis: bot, escalation });
      const removed = plannedSchedulers(d.config).find((p) => p.id.startsWith('pgbb:restore-test:'))?.id ?? 'health';
      const admin = createQueues(kit.redis, d.config.queuePrefix);
      opened.push({ close: () => admin.close() });
      if (removed === 'health') await admin.health.removeJobScheduler('health');
      else await admin.restoreTest.removeJobScheduler(removed);
      const [pagesBefore, refusedBefore, restoredBefore] = [planPages().length, posts(/could not be restored/).length, posts(/in Redis again/).length];

      await kit.redis.acl('SETUSER', user, '-@write');
      const refused = await k.check('periodic check');
      expect(refused.after).toBeNull();
      expect(refused.before.schedulers.map((s) => s.id)).toEqual([removed]);
      // Sent within the check (no outbox): the stand-in holds it when the check returns.
      const trigger = planPages().slice(pagesBefore);
      expect(trigger.map((e) => e.event_action)).toEqual(['trigger']);
      expect(trigger[0]?.payload?.severity).toBe('critical');
      expect(trigger[0]?.payload?.summary).toMatch(
        /^pg-backup-bot: 1 planned schedule\(s\) missing from Redis and not restorable: Redis refused them: .*can't run this command/,
      );
      const said = posts(/could not be restored/).slice(refusedBefore);
      expect(said).toHaveLength(1);
      expect(said[0]?.text).toContain(`Planned schedules are missing from Redis and could not be restored: ${removed}.`);
      expect(JSON.stringify(said[0]?.blocks)).toContain(`PagerDuty paged directly (critical, dedup key ${PLAN_DEDUP_KEY})`);

      // Still refused: the page is open, nothing is sent or said again.
      expect((await k.check('reconnect')).after).toBeNull();
      expect(planPages().length).toBe(pagesBefore + 1);
      expect(posts(/could not be restored/).length).toBe(refusedBefore + 1);

      await kit.redis.acl('SETUSER', user, '+@write');
      const whole = await k.check('periodic check');
      expect(whole.after && gapSize(whole.after)).toBe(0);
      expect(
        planPages()
          .slice(pagesBefore)
          .map((e) => e.event_action),
      ).toEqual(['trigger', 'resolve']);
      expect(kit.pd.alerts.get(PLAN_DEDUP_KEY)?.status).toBe('resolved');
      expect(
        posts(/in Redis again/)
          .slice(restoredBefore)
          .map((m) => m.text),
      ).toEqual([`:white_check_mark: Every planned schedule is in Redis again. PagerDuty page resolved (${PLAN_DEDUP_KEY})`]);
      // Whole and resolved: a further check says nothing more.
      await k.check('periodic check');
      expect(planPages().length).toBe(pagesBefore + 2);
      expect(posts(/in Redis again/).length).toBe(restoredBefore + 1);
    });
  });
});

describe('restartTime (a restarted Redis against one that kept running)', () => {
  const snapshot = { at: new Date('2026-12-07T01:42:01.600Z'), active: [], outbox: [], paged: [], runId: 'a'.repeat(40) };
  const noticedAt = new Date('2026-12-07T01:42:02.100Z');

  it('calls a new run_id a restart even when the whole-second uptime puts its start before the snapshot', () => {
    // Started at 01:42:01.9: INFO says 1 s up at 01:42:02.1 (seconds counted between whole-second readings).
    expect(restartTime({ runId: 'b'.repeat(40), uptime: 1 }, snapshot, noticedAt)).toEqual(snapshot.at);
    expect(restartTime({ runId: 'b'.repeat(40), uptime: 0 }, snapshot, noticedAt)).toEqual(noticedAt);
  });

  it('calls the same run_id no restart (FLUSHALL), however short its uptime', () => {
    expect(restartTime({ runId: 'a'.repeat(40), uptime: 1 }, snapshot, noticedAt)).toBeNull();
    expect(restartTime({ runId: 'a'.repeat(40), uptime: 86_400 }, snapshot, noticedAt)).toBeNull();
  });

  it('with no run_id to compare, goes by the uptime alone', () => {
    expect(restartTime({ runId: null, uptime: 0 }, snapshot, noticedAt)).toEqual(noticedAt);
    expect(restartTime({ runId: null, uptime: 3600 }, snapshot, noticedAt)).toBeNull();
    expect(restartTime({ runId: 'b'.repeat(40), uptime: 5 }, null, noticedAt)).toEqual(new Date('2026-12-07T01:41:57.100Z'));
    expect(restartTime({ runId: 'b'.repeat(40), uptime: Number.NaN }, snapshot, noticedAt)).toBeNull();
  });
});

describe('two deployments with different plans on one Redis and prefix', () => {
  it('each puts its own schedules back and removes the other’s; after five minutes the channel hears it once, naming both', async () => {
    const a = deployment();
    const shop = a.config.targets[0];
    if (!shop) throw new Error('no target');
    // The other install: its own target, the same prefix (both left at the default).
    const billing = { ...shop, name: 'billing', policy: { ...shop.policy, name: 'billing' } };
    const b = { config: { ...a.config, targets: [billing] }, queues: createQueues(kit.redis, a.config.queuePrefix) };
    opened.push({ close: () => b.queues.close() });
    let at = Date.parse('2026-12-07T03:00:00Z');
    const now = () => new Date(at);
    const said = () => [...kit.slack.messages.values()].map((m) => m.text ?? '').filter((t) => t.includes(`QUEUE_PREFIX \`${a.config.queuePrefix}\``));
    const first = await keeper(a, { now });
    const second = await keeper(b, { now });
    // Each check removes the other's schedulers and puts its own back: the rivalry the logs alone used to know.
    expect((await first.check('test')).before.schedulers.length).toBeGreaterThan(0);
    await second.check('test');
    expect(said()).toEqual([]);
    at += 5 * 60_000;
    await first.check('test');
    await second.check('test');
    await first.check('test');
    const text = await until('the channel told', () => (said().length > 0 ? said() : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(said()).toHaveLength(1);
    expect(text[0]).toMatch(
      new RegExp(
        `^:rotating_light: Another pg-backup-bot deployment with a different plan shares this Redis and QUEUE_PREFIX \`\\{pk-[0-9a-f]{8}\\}\`: host \\S+ \\(targets: (billing|${shop.name})\\), beside this one on \\S+ \\(targets: (billing|${shop.name})\\), for over 5 minutes\\. Each removes the schedules the other planned and takes its jobs, so scheduled backups may not run\\. Give each deployment its own QUEUE_PREFIX \\(or its own Redis\\), or the same config file\\. \\(A rollout of a changed config that has not reached every worker yet looks the same: it ends when every worker runs the new config\\.\\)$`,
      ),
    );
  });

  it('plans alike in their crons but not in what a scheduled job keeps are rivals too (they rewrite each other)', () => {
    const shop = kit.config.targets[0];
    if (!shop) throw new Error('no target');
    const [daily] = shop.policy.backups;
    if (!daily) throw new Error('no daily backup');
    const longer = { ...kit.config, targets: [{ ...shop, policy: { ...shop.policy, backups: [{ ...daily, keepDays: daily.keepDays + 1 }] } }] };
    const same = { ...kit.config, targets: [{ ...shop, policy: { ...shop.policy, backups: [{ ...daily }] } }] };
    expect(planFingerprint(longer)).not.toBe(planFingerprint(same));
    expect(planFingerprint(same)).toBe(planFingerprint({ ...same }));
  });

  it('workers of one deployment (the same plan) are no rivals, however long they run', async () => {
    const a = deployment();
    let at = Date.parse('2026-12-07T03:00:00Z');
    const now = () => new Date(at);
    const one = await keeper(a, { now });
    const two = await keeper({ config: { ...a.config }, queues: a.queues }, { now });
    for (let i = 0; i < 3; i++) {
      await one.check('test');
      await two.check('test');
      at += 5 * 60_000;
    }
    expect([...kit.slack.messages.values()].filter((m) => (m.text ?? '').includes(`QUEUE_PREFIX \`${a.config.queuePrefix}\``))).toEqual([]);
  });

  it('by default times every plan by Redis’s clock (TIME), the one every host shares', async () => {
    const a = deployment();
    const look = rivalWatch({ redis: kit.redis, config: a.config, log: kit.log });
    expect(await look(async () => undefined)).toEqual([]);
    const [seconds] = await kit.redis.time();
    const written = JSON.parse((await kit.redis.hget(`${a.config.queuePrefix}:plan:fingerprints`, planFingerprint(a.config))) ?? '{}') as { at?: number };
    expect(Math.abs((written.at ?? 0) - Number(seconds) * 1000)).toBeLessThan(5_000);
  });
});
