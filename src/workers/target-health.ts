import type { Job, Queue, Worker } from 'bullmq';
import type { Config } from '../config.ts';
import { checkTarget, healthSources } from '../health/index.ts';
import { pagerCondition } from '../health/index.ts';
import type { RunLog } from '../health/index.ts';
import type { AppliedResult, HealthState } from '../health/index.ts';
import { backupDiskCondition, inputDiskNeed, resolveThresholds, targetThresholds, type TargetDiskNeed } from '../health/index.ts';
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

/**
 * Checks one target's conditions, remembers them, and says what changed; resolves to the conditions. `backupDisk`
 * judges the disk all targets write to, once for all of them, from what the targets' last checks in this process saw.
 */
export type TargetEvaluator = ((target: string, log?: Logger) => Promise<ConditionResult[]>) & {
  /** The storage-wide disk condition, posted and paged once (null where the storage has no free-space figure). */
  backupDisk(log?: Logger): Promise<ConditionResult | null>;
  /**
   * After a job's check of one target: the disk is judged again when it was failing (so its page resolves seconds
   * after a backup that fits) or that target's disk now fails, once every target has been checked in this process.
   */
  backupDiskAfter(results: readonly ConditionResult[], log?: Logger): Promise<ConditionResult | null>;
};

// The backup and restore-test workers already post and page their own failures (PITR restore tests too); the health
// checks track these (for /backup health, `check` and /metrics) but leave the talking to them, so nobody hears of a
// failure twice. A target's `disk` is quiet on its own: the storage-wide condition talks for every target at once.
const REPORTED_BY_WORKERS = new Set(['backup-failing', 'restore-test-failing', 'pitr-test-failing']);
const UNPAGED = 'posted here, not paged (the config can make it page)';

/** One after another per key: a check that read storage before a change must not apply its verdict after a newer one. */
function serialized<T>(): (key: string, run: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>();
  return (key, run) => {
    const next = (tails.get(key) ?? Promise.resolve()).catch(() => undefined).then(run);
    tails.set(key, next);
    const clear = () => tails.get(key) === next && tails.delete(key);
    next.then(clear, clear);
    return next;
  };
}

/**
 * A condition that starts failing pages once and posts once; when it clears, the page is resolved and the channel
 * told. The remembered state makes this hold across restarts, retries and processes. Checks of one target run one
 * after another in this process: a check that read the target before a backup landed must not apply its stale
 * verdict after the check that saw the backup, or the page would open again.
 */
export function createTargetEvaluator(deps: TargetHealthDeps): TargetEvaluator {
  const now = deps.now ?? (() => new Date());
  const inTurn = serialized<ConditionResult[]>();
  const diskInTurn = serialized<ConditionResult | null>();
  const needs = new Map<string, TargetDiskNeed>();
  let diskFailing = false;
  const evaluate = (target: string, log = deps.log) =>
    inTurn(target, async () => {
      const { input, results } = await evaluateTarget(deps, target, now(), log);
      needs.set(target, inputDiskNeed(input));
      return results;
    });
  const backupDisk = (log = deps.log) =>
    diskInTurn('', async () => {
      const configured = new Set(deps.config.targets.map((t) => t.name));
      const result = await judgeBackupDisk(
        deps,
        [...needs.values()].filter((n) => configured.has(n.target)),
        now(),
        log,
      );
      diskFailing = result?.status === 'failing';
      return result;
    });
  const backupDiskAfter = async (results: readonly ConditionResult[], log = deps.log) => {
    const failing = results.some((r) => r.condition === 'disk' && r.status === 'failing');
    const everyTarget = deps.config.targets.every((t) => needs.has(t.name));
    return (diskFailing || failing) && everyTarget ? backupDisk(log) : null;
  };
  return Object.assign(evaluate, { backupDisk, backupDiskAfter });
}

async function evaluateTarget(deps: TargetHealthDeps, target: string, at: Date, log: Logger) {
  const { config } = deps;
  // The same sources as /backup health (pitr targets' WAL stream, archive and slot included), judged at `at`.
  const sources = {
    ...healthSources(config, { storage: deps.storage, runs: deps.runs, backupQueue: deps.backupQueue }),
    thresholdsFor: targetThresholds(config, () => at),
  };
  const checked = await checkTarget(sources, target, at);
  const applied = await deps.state.apply(target, checked.results, at);
  for (const a of applied) await report(deps, target, a, log);
  return checked;
}

/** The storage as a health subject: its own state, page (dedup key `pg-backup-bot/<where>/disk`) and posts. */
async function judgeBackupDisk(deps: TargetHealthDeps, needs: TargetDiskNeed[], at: Date, log: Logger): Promise<ConditionResult | null> {
  if (!deps.storage.freeSpace) return null;
  // The dedup key holds it: PagerDuty takes 255 characters, so a very long path keeps its end.
  const described = deps.storage.describe();
  const where = described.length > 200 ? `…${described.slice(-199)}` : described;
  const result = backupDiskCondition(where, await deps.storage.freeSpace(), resolveThresholds(deps.config.health.thresholds), needs);
  if (!result) return null;
  for (const a of await deps.state.apply(where, [result], at)) await report(deps, where, a, log);
  return result;
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
      const l = log.child({ after: job?.id, queue: worker.name });
      evaluate(target, l)
        .then((results) => evaluate.backupDiskAfter(results, l))
        .catch((err: unknown) => log.warn({ err, target, jobId: job?.id, queue: worker.name }, 'could not check health after a job'));
    };
    worker.on('completed', after);
    worker.on('failed', after);
  }
}
