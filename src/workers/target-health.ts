import type { Job, Queue, Worker } from 'bullmq';
import type { Config } from '../config.ts';
import { checkTarget, healthSources } from '../health/index.ts';
import { pagerCondition } from '../health/index.ts';
import type { RunLog } from '../health/index.ts';
import type { AppliedResult, HealthState } from '../health/index.ts';
import { targetThresholds } from '../health/index.ts';
import type { ConditionResult } from '../health/index.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import type { Escalation } from '../notifications/escalation.ts';
import { conditionCleared, conditionFailing } from '../notifications/health-messages.ts';
import type { Notifier } from '../notifications/types.ts';
import type { Storage } from '../storage/index.ts';
import { quietNotifier } from './quiet-notifier.ts';

export interface TargetHealthDeps {
  config: Config;
  storage: Storage;
  runs: RunLog;
  state: HealthState;
  backupQueue: Queue<BackupJobData>;
  notifier: Notifier;
  escalation: Escalation;
  log: Logger;
  now?: () => Date;
}

/** Checks one target's conditions, remembers them, and says what changed; resolves to the conditions. */
export type TargetEvaluator = (target: string, log?: Logger) => Promise<ConditionResult[]>;

// The backup and restore-test workers already post and page their own failures (PITR restore tests too); the health
// checks track these (for /backup health, `check` and /metrics) but leave the talking to them, so nobody hears of a
// failure twice.
const REPORTED_BY_WORKERS = new Set(['backup-failing', 'restore-test-failing', 'pitr-test-failing']);
const UNPAGED = 'posted here, not paged (the config can make it page)';

/**
 * A condition that starts failing pages once and posts once; when it clears, the page is resolved and the channel
 * told. The remembered state makes this hold across restarts, retries and processes. Checks of one target run one
 * after another in this process: a check that read the target before a backup landed must not apply its stale
 * verdict after the check that saw the backup, or the page would open again.
 */
export function createTargetEvaluator(deps: TargetHealthDeps): TargetEvaluator {
  const now = deps.now ?? (() => new Date());
  const tails = new Map<string, Promise<unknown>>();
  return (target, log = deps.log) => {
    const run = (tails.get(target) ?? Promise.resolve()).catch(() => undefined).then(() => evaluateTarget(deps, target, now(), log));
    tails.set(target, run);
    run.then(
      () => tails.get(target) === run && tails.delete(target),
      () => tails.get(target) === run && tails.delete(target),
    );
    return run;
  };
}

async function evaluateTarget(deps: TargetHealthDeps, target: string, at: Date, log: Logger): Promise<ConditionResult[]> {
  const { config } = deps;
  // The same sources as /backup health (pitr targets' WAL stream, archive and slot included), judged at `at`.
  const sources = {
    ...healthSources(config, { storage: deps.storage, runs: deps.runs, backupQueue: deps.backupQueue }),
    thresholdsFor: targetThresholds(config, () => at),
  };
  const { results } = await checkTarget(sources, target, at);
  const applied = await deps.state.apply(target, results, at);
  for (const a of applied) await report(deps, target, a, log);
  return results;
}

async function report(deps: TargetHealthDeps, target: string, a: AppliedResult, log: Logger): Promise<void> {
  const { result, changed, previous, previousQuiet } = a;
  if (!changed || REPORTED_BY_WORKERS.has(result.condition)) return;
  const say = quietNotifier(deps.notifier, log);
  const condition = pagerCondition(result.condition);
  if (result.status === 'failing') {
    if (result.quiet) {
      log.info({ target, condition: result.condition, evidence: result.evidence }, 'health condition failing, not paged');
      return;
    }
    // A warning posted for people to read, not worth waking anyone (data-drift unless the config says page).
    const escalation = result.unpaged
      ? UNPAGED
      : await deps.escalation.failed(target, condition, {
          summary: result.summary,
          severity: result.severity,
          details: { condition: result.condition, evidence: result.evidence },
        });
    log.warn({ target, condition: result.condition, evidence: result.evidence }, 'health condition failing');
    await say.post(conditionFailing(target, result, escalation));
  } else if (previous === 'failing') {
    const resolved = await deps.escalation.passed(target, condition, { summary: `${target}: ${result.condition} cleared` });
    log.info({ target, condition: result.condition }, 'health condition cleared');
    // A quiet failure was never posted: its end is news only if a page was open after all.
    if (!previousQuiet || resolved) await say.post(conditionCleared(target, result, null, resolved));
  }
}

/**
 * A target's conditions are judged again as soon as one of its backups, restore tests or restores ends, so a page
 * resolves seconds after the fix instead of at the next health run. After the job has left the active list (the
 * `completed`/`failed` events), so a finished backup is not counted as running. Never fails or delays the job.
 */
export function reevaluateAfterJobs(workers: readonly Worker[], evaluate: TargetEvaluator, log: Logger): void {
  for (const worker of workers) {
    const after = (job: Job | undefined) => {
      const target: unknown = job?.data?.target;
      if (typeof target !== 'string') return;
      evaluate(target, log.child({ after: job?.id, queue: worker.name })).catch((err: unknown) =>
        log.warn({ err, target, jobId: job?.id, queue: worker.name }, 'could not check health after a job'),
      );
    };
    worker.on('completed', after);
    worker.on('failed', after);
  }
}
