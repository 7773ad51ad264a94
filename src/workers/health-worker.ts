import { storageMarkProblem } from '../storage/storage-mark.ts';
import type { Job } from 'bullmq';
import type { Deps } from '../deps.ts';
import { toUserMessage } from '../errors.ts';
import { baseBackupAfterBreak } from './base-backup-after-break.ts';
import { promotionNotices } from './promotion-notice.ts';
import { diskSubject } from '../health/index.ts';
import { createTargetEvaluator, type TargetEvaluator, type TargetHealthDeps } from './target-health.ts';

/** The health checks' deps from the process's: they start a base backup after a break, and tell of a promotion. */
export function healthDepsOf(deps: Deps): TargetHealthDeps {
  const { config } = deps;
  return {
    config,
    storage: deps.storage,
    runs: deps.runs,
    state: deps.healthState,
    backupQueue: deps.queues.backup,
    notifier: deps.notifier,
    escalation: deps.escalation,
    log: deps.log.child({ worker: 'health' }),
    afterBreak: baseBackupAfterBreak({ config, queue: deps.queues.baseBackup, redis: deps.workerRedis }),
    promotionNotice: promotionNotices({ config, redis: deps.workerRedis, notifier: deps.notifier }),
    storageMark: () => storageMarkProblem(deps.storage, deps.workerRedis, config.queuePrefix),
  };
}

export interface HealthWorkerDeps extends TargetHealthDeps {
  /** Shared with the job workers' after-job checks (workers/index.ts), so checks of one target never overlap. */
  evaluate?: TargetEvaluator;
}

/**
 * Every target, every condition (target-health.ts), then the backup disk they share (disk-health.ts): a condition
 * that starts failing pages once and posts once; when it clears, the page is resolved and the channel told. The
 * remembered state makes this hold across restarts and retries.
 */
export function healthProcessor(deps: HealthWorkerDeps) {
  const evaluate = deps.evaluate ?? createTargetEvaluator(deps);
  return async (job: Job): Promise<{ failing: string[] }> => {
    const log = deps.log.child({ jobId: job.id });
    const failing: string[] = [];
    const couldNot: string[] = [];
    for (const target of deps.config.targets) {
      // One target whose check cannot run (its storage unreadable, say) must not leave the others unchecked:
      // their pages would never come. The run still fails, naming it, after every other target was checked.
      try {
        const results = await evaluate(target.name, log);
        for (const r of results) if (r.status === 'failing') failing.push(`${target.name}/${r.condition}`);
      } catch (err) {
        log.error({ err, target: target.name }, 'health check of a target could not run');
        couldNot.push(`${target.name}: ${toUserMessage(err)}`);
      }
    }
    // Judged once for every target of the storage, from each target's verdict as remembered in Redis (a target whose
    // check failed above counts as last checked): the disk they all write to (one page for a full disk, not one per
    // target), and the targets that could not be checked (unchecked-health.ts: one page for an outage).
    const storageWide = [
      ['disk', 'the backup disk', () => evaluate.backupDisk(log)],
      ['unchecked', 'the unchecked targets', () => evaluate.unchecked(log)],
    ] as const;
    for (const [condition, what, judge] of storageWide) {
      try {
        if ((await judge()).status === 'failing') failing.push(`${diskSubject(deps.storage)}/${condition}`);
      } catch (err) {
        log.error({ err }, `health check of ${what} could not run`);
        couldNot.push(`${what}: ${toUserMessage(err)}`);
      }
    }
    if (couldNot.length > 0) throw new Error(`health checks could not run for ${couldNot.join('; ')}`);
    return { failing };
  };
}
