import { hostname } from 'node:os';
import type { RedisConnection } from '../redis-client.ts';
import { dedupKey, type Escalation } from '../notifications/escalation.ts';
import type { PagerDutyClient } from '../notifications/pagerduty-client.ts';
import { planNotRestored, planRestored, redisDataLost } from '../notifications/redis-messages.ts';
import type { Notifier } from '../notifications/types.ts';
import { quietNotifier } from './quiet-notifier.ts';
import { rivalWatch } from './plan-rivals.ts';
import { applyPlan, gapSize, planGap, type PlanDeps, type PlanGap } from './redis-plan.ts';
import { restoreSnapshot, serverRun, takeSnapshot, type RedisSnapshot } from './redis-snapshot.ts';

/**
 * Keeps Redis in step with the plan while workers run (BullMQ keeps schedulers and queue limits nowhere else):
 * checked on every reconnect of the watched connections and every `intervalMs`. A marker key, written when the
 * plan is applied, tells "Redis lost its data" (the marker is gone) from "someone removed a scheduler" (it is not).
 * Of several workers noticing the same loss, the one that writes the new marker first tells the channel.
 */

export interface PlanKeeperDeps extends PlanDeps {
  /** The worker connection: marker, snapshot, restores. */
  redis: RedisConnection;
  /** Connections whose reconnect (a `ready` after the first) triggers a check. */
  watch: RedisConnection[];
  escalation: Escalation;
  /** Direct delivery, for when Redis refuses writes and the outbox cannot take the page. */
  pagerDuty: PagerDutyClient | null;
  notifier: Notifier;
  intervalMs?: number;
  now?: () => Date;
}

export interface CheckOutcome {
  lost: boolean;
  /** What was missing before the check, and what is still missing after it. */
  before: PlanGap;
  after: PlanGap | null;
}

export interface PlanKeeper {
  check(how: string): Promise<CheckOutcome>;
  stop(): void;
}

/** The bot's own conditions are not a target's: `_bot` can never be a target name (they start with a letter). */
export const PLAN_DEDUP_KEY = dedupKey('_bot', 'schedules');

// One factory, not split: page, resolvePage, announceLoss and checkOnce share the snapshot, the open page and the running check.
export async function startPlanKeeper(deps: PlanKeeperDeps): Promise<PlanKeeper> {
  const now = deps.now ?? (() => new Date());
  const log = deps.log.child({ component: 'plan-keeper' });
  const say = quietNotifier(deps.notifier, log);
  const markerKey = `${deps.config.queuePrefix}:plan:marker`;
  const writeMarker = () => deps.redis.set(markerKey, JSON.stringify({ at: now().toISOString(), host: hostname() }), 'NX');
  let snapshot: RedisSnapshot | null = null;
  /** Set while the "cannot be restored" page is open: resolved (and said) once the plan is whole again. */
  let paging: 'outbox' | 'direct' | null = null;

  await applyPlan(deps);
  await writeMarker();

  async function page(gap: PlanGap, reason: string): Promise<void> {
    if (paging) return;
    const missing = [...gap.schedulers.map((s) => s.id), ...gap.limits.map((l) => `${l} queue limit`)];
    const summary = `pg-backup-bot: ${missing.length} planned schedule(s) missing from Redis and not restorable: ${reason}`.slice(0, 1000);
    let sentence: string;
    try {
      sentence = await deps.escalation.failed('_bot', 'schedules', { summary, severity: 'critical', details: { missing, reason } });
      paging = 'outbox';
    } catch (err) {
      // Redis that refuses the plan's writes refuses the outbox's too: page straight from here.
      log.warn({ err }, 'could not queue the page; sending it directly');
      const sent = deps.pagerDuty
        ? await deps.pagerDuty.send({
            action: 'trigger',
            dedupKey: PLAN_DEDUP_KEY,
            summary,
            severity: 'critical',
            source: 'pg-backup-bot',
            component: '_bot',
            customDetails: { missing, reason },
            timestamp: now().toISOString(),
          })
        : null;
      sentence = sent?.kind === 'accepted' ? `PagerDuty paged directly (critical, dedup key ${PLAN_DEDUP_KEY})` : 'PagerDuty could NOT be paged (see logs)';
      paging = 'direct';
    }
    log.error({ missing, reason }, 'planned schedules missing from Redis and not restorable');
    await say.post(planNotRestored(missing, reason, sentence));
  }

  async function resolvePage(): Promise<void> {
    if (!paging) return;
    const summary = 'pg-backup-bot: every planned schedule is in Redis again';
    let resolved: string | null = null;
    if (paging === 'outbox') {
      resolved = await deps.escalation.passed('_bot', 'schedules', { summary }).catch(() => null);
    } else if (deps.pagerDuty) {
      const sent = await deps.pagerDuty
        .send({
          action: 'resolve',
          dedupKey: PLAN_DEDUP_KEY,
          summary,
          severity: 'info',
          source: 'pg-backup-bot',
          component: '_bot',
          timestamp: now().toISOString(),
        })
        .catch(() => null);
      resolved = sent?.kind === 'accepted' ? `PagerDuty page resolved (${PLAN_DEDUP_KEY})` : null;
    }
    paging = null;
    await say.post(planRestored(resolved));
  }

  async function announceLoss(how: string, before: PlanGap): Promise<void> {
    const noticedAt = now();
    const run = await serverRun(deps.redis);
    const restartedAt = restartTime(run, snapshot, noticedAt);
    const requeued = snapshot ? await restoreSnapshot(deps.redis, deps.queues, deps.config.queuePrefix, snapshot) : { paged: 0, events: 0, runs: 0 };
    // What ran before the loss is unknown now: look at every target again, at once.
    await deps.queues.health.add('health', {});
    const message = redisDataLost({
      restartedAt,
      noticedAt,
      how,
      restored: { schedulers: before.schedulers.length, limits: before.limits },
      snapshot,
      requeued,
    });
    log.warn({ how, restored: before, requeued, lostJobs: snapshot?.active ?? null }, 'Redis lost its data; plan restored');
    await say.post(message);
  }

  // A test's clock when it sets one; else Redis's, the one clock every host shares.
  const rivals = rivalWatch({ redis: deps.redis, config: deps.config, log, ...(deps.now ? { clock: async () => now().getTime() } : {}) });

  async function checkOnce(how: string): Promise<CheckOutcome> {
    await rivals((text) => say.post({ text })).catch((err: unknown) => log.warn({ err }, 'could not look for another deployment'));
    const lost = (await deps.redis.exists(markerKey)) === 0;
    const before = await planGap(deps);
    if (!lost && gapSize(before) === 0) {
      await resolvePage();
      snapshot = await takeSnapshot(deps.redis, deps.queues, deps.config.queuePrefix, now());
      return { lost, before, after: before };
    }
    let after: PlanGap | null = null;
    let reason = '';
    try {
      await applyPlan(deps);
      after = await planGap(deps);
      reason = gapSize(after) > 0 ? 'Redis accepted the writes but still does not hold them.' : '';
    } catch (err) {
      reason = `Redis refused them: ${(err as Error).message}.`;
    }
    if (after && gapSize(after) === 0) {
      await resolvePage();
      if (lost && (await writeMarker().catch(() => null)) === 'OK') await announceLoss(how, before);
      else if (!lost) log.warn({ how, restored: before }, 'planned schedules were missing from Redis; restored');
    } else {
      await page(after ?? before, reason);
    }
    return { lost, before, after };
  }

  // One check at a time: a reconnect during the periodic check joins it instead of racing it.
  let running: Promise<CheckOutcome> | null = null;
  const check = (how: string): Promise<CheckOutcome> => {
    running ??= checkOnce(how).finally(() => {
      running = null;
    });
    return running;
  };
  const quietly = (how: string) => void check(how).catch((err: unknown) => log.warn({ err, how }, 'could not check Redis against the plan'));

  const onReady = () => quietly('reconnect');
  for (const r of deps.watch) r.on('ready', onReady);
  const timer = setInterval(() => quietly('periodic check'), deps.intervalMs ?? 30_000);
  timer.unref();
  snapshot = await takeSnapshot(deps.redis, deps.queues, deps.config.queuePrefix, now()).catch(() => null);

  return {
    check,
    stop() {
      clearInterval(timer);
      for (const r of deps.watch) r.off('ready', onReady);
    },
  };
}

/**
 * When the Redis server restarted, or null when it kept running (FLUSHALL, a promoted replica). The run_id says
 * whether (a new one at every start); the uptime, in whole seconds counted between whole-second clock readings,
 * says when to within a second either way, so the time is never put before the snapshot that saw the data intact.
 */
export function restartTime(run: { runId: string | null; uptime: number }, snapshot: RedisSnapshot | null, noticedAt: Date): Date | null {
  if (!Number.isFinite(run.uptime)) return null;
  const started = new Date(noticedAt.getTime() - run.uptime * 1000);
  if (!snapshot) return started;
  const restarted = snapshot.runId && run.runId ? snapshot.runId !== run.runId : started > snapshot.at;
  if (!restarted) return null;
  return started > snapshot.at ? started : snapshot.at;
}
