import type { Deps } from '../deps.ts';
import { checkTarget } from './collect.ts';
import { healthSources } from './sources.ts';
import { QUEUE_STATES, type QueueState } from './metrics.ts';

/**
 * GET /metrics: refreshes every gauge from storage, Redis and the queues at scrape time (Prometheus scrapes
 * every 15–60 s; a handful of manifests and a few Redis calls are cheap), then renders the registry.
 */
// The failure counter lives in Redis (workers may run in other processes); the local prom-client counter is
// advanced by the difference, so it stays a monotonic counter as Prometheus expects.
/** What a scrape reads: the config, storage, the run log, the queues it reports on, and the registry it renders. */
export type ScrapeDeps = Pick<Deps, 'config' | 'storage' | 'runs' | 'metrics'> &
  Partial<Pick<Deps, 'slackFailures'>> & {
    queues: Pick<Deps['queues'], 'backup' | 'restoreTest' | 'restore' | 'pagerduty'>;
  };

const failuresSeen = new WeakMap<ScrapeDeps['metrics'], Map<string, number>>();

export async function renderMetrics(deps: ScrapeDeps): Promise<{ contentType: string; body: string }> {
  const now = new Date();
  const queues = { backup: deps.queues.backup, 'restore-test': deps.queues.restoreTest, restore: deps.queues.restore, pagerduty: deps.queues.pagerduty };
  const queueDepths: Record<string, Record<QueueState, number>> = {};
  for (const [name, q] of Object.entries(queues)) {
    const counts = await q.getJobCounts(...QUEUE_STATES);
    queueDepths[name] = Object.fromEntries(QUEUE_STATES.map((s) => [s, counts[s] ?? 0])) as Record<QueueState, number>;
  }
  const sources = healthSources(deps.config, { storage: deps.storage, runs: deps.runs, backupQueue: deps.queues.backup });
  for (const target of deps.config.targets) {
    // A target whose storage cannot be read: its series keep their last values, and `unchecked` says it (QA: one
    // unreadable directory made /metrics answer 503 for every target, and the bot-down alert fired).
    const checked = await checkTarget(sources, target.name, now).catch(() => null);
    deps.metrics.setUnchecked(target.name, checked === null);
    if (!checked) continue;
    const { input, results } = checked;
    const seen = failuresSeen.get(deps.metrics) ?? new Map<string, number>();
    failuresSeen.set(deps.metrics, seen);
    const total = await deps.runs.failures(target.name);
    for (let n = seen.get(target.name) ?? 0; n < total; n++) deps.metrics.recordBackupFailure(target.name);
    seen.set(target.name, total);
    deps.metrics.update(target.name, {
      backups: input.backups,
      lastBackupRun: input.lastBackupRun,
      lastRestoreTest: input.lastRestoreTest,
      results,
      queueDepths,
      now,
      ...(input.walHealth ? { walHealth: input.walHealth } : {}),
      ...(target.pitr ? { rpoObjectiveSeconds: target.pitr.rpoSeconds } : {}),
    });
  }
  if (deps.slackFailures) deps.metrics.setSlackFailures(await deps.slackFailures.counts());
  return { contentType: deps.metrics.registry.contentType, body: await deps.metrics.registry.metrics() };
}
