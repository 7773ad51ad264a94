import type { Config } from '../config.ts';
import type { Queues } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { plannedSchedulers, syncSchedulers } from '../schedules/index.ts';

/**
 * What the worker processes keep in Redis, and nothing else holds: the job schedulers (the health check's and the
 * config's) and the queues' global concurrency. A Redis restarted empty, a failover to a replica that had not
 * received them, or a FLUSHALL loses all of it, and BullMQ never puts it back by itself.
 */

/** `health` has no `pgbb:` prefix: schedules/sync.ts never touches it, so it is kept here. */
export const HEALTH_SCHEDULER = 'health';

/** One delivery at a time across every host (events of one dedup key leave in order), one retention run at a time. */
const GLOBAL_LIMITS = ['pagerduty', 'retention'] as const;

export interface PlanGap {
  /** Planned scheduler ids that Redis does not hold, with their target (null: the whole bot's). */
  schedulers: Array<{ id: string; target: string | null; label: string }>;
  /** Queues whose global concurrency is not 1. */
  limits: string[];
}

export interface PlanDeps {
  config: Config;
  queues: Queues;
  log: Logger;
}

const healthEvery = (config: Config) => config.health.intervalMinutes * 60_000;

/** Reads Redis against the plan: what is missing. Reads only. */
export async function planGap(deps: PlanDeps): Promise<PlanGap> {
  const { queues, config } = deps;
  const [backup, restoreTest, retention, checklist, baseBackup, health, ...limits] = await Promise.all([
    queues.backup.getJobSchedulers(),
    queues.restoreTest.getJobSchedulers(),
    queues.retention.getJobSchedulers(),
    queues.checklist.getJobSchedulers(),
    queues.baseBackup.getJobSchedulers(),
    queues.health.getJobScheduler(HEALTH_SCHEDULER),
    ...GLOBAL_LIMITS.map((q) => queues[q].getGlobalConcurrency()),
  ]);
  const held = new Set([...backup, ...restoreTest, ...retention, ...checklist, ...baseBackup].map((s) => s.key));
  const schedulers = plannedSchedulers(config)
    .filter((p) => !held.has(p.id))
    .map((p) => ({ id: p.id, target: p.target, label: p.label }));
  if (!health || health.every !== healthEvery(config)) schedulers.push({ id: HEALTH_SCHEDULER, target: null, label: 'health check' });
  return { schedulers, limits: GLOBAL_LIMITS.filter((_, i) => limits[i] !== 1) };
}

export const gapSize = (g: PlanGap) => g.schedulers.length + g.limits.length;

/**
 * Puts the plan into Redis. Idempotent and safe from many processes at once; an unchanged scheduler is not
 * re-upserted (that would push a due run to its next slot: schedules/sync.ts).
 */
export async function applyPlan(deps: PlanDeps): Promise<void> {
  const { queues, config } = deps;
  const health = await queues.health.getJobScheduler(HEALTH_SCHEDULER);
  if (!health || health.every !== healthEvery(config)) {
    await queues.health.upsertJobScheduler(HEALTH_SCHEDULER, { every: healthEvery(config) }, { name: 'health', data: {} });
  }
  await syncSchedulers(queues, config, deps.log);
  for (const q of GLOBAL_LIMITS) {
    if ((await queues[q].getGlobalConcurrency()) !== 1) await queues[q].setGlobalConcurrency(1);
  }
}
