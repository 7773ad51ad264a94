import type { Job, Queue } from 'bullmq';
import type { Config } from '../config.ts';
import { checkTarget, encryptionRequired } from '../health/collect.ts';
import { targetThresholds } from '../health/target-thresholds.ts';
import { pagerCondition } from '../health/conditions.ts';
import type { RunLog } from '../health/last-runs.ts';
import type { HealthState } from '../health/state.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import type { Escalation } from '../notifications/escalation.ts';
import { conditionCleared, conditionFailing } from '../notifications/health-messages.ts';
import type { Notifier } from '../notifications/types.ts';
import type { Storage } from '../storage/types.ts';
import { quietNotifier } from './quiet-notifier.ts';

export interface HealthWorkerDeps {
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

// The backup and restore-test workers already post and page their own failures; the health job tracks these two
// (for /backup health, `check` and /metrics) but leaves the talking to them, so nobody hears of a failure twice.
const REPORTED_BY_WORKERS = new Set(['backup-failing', 'restore-test-failing']);

/**
 * Every target, every condition: a condition that starts failing pages once and posts once; when it clears, the
 * page is resolved and the channel told. The remembered state makes this hold across restarts and retries.
 */
export function healthProcessor(deps: HealthWorkerDeps) {
  const now = deps.now ?? (() => new Date());
  return async (job: Job): Promise<{ failing: string[] }> => {
    const log = deps.log.child({ jobId: job.id });
    const say = quietNotifier(deps.notifier, log);
    const failing: string[] = [];
    for (const target of deps.config.targets) {
      const at = now();
      const { results } = await checkTarget(
        { storage: deps.storage, runs: deps.runs, backupQueue: deps.backupQueue, thresholds: deps.config.health.thresholds, thresholdsFor: targetThresholds(deps.config, () => at), encryptionRequired: encryptionRequired(deps.config) },
        target.name,
        at,
      );
      const applied = await deps.state.apply(target.name, results, at);
      for (const { result, changed, previous } of applied) {
        if (result.status === 'failing') failing.push(`${target.name}/${result.condition}`);
        if (!changed || REPORTED_BY_WORKERS.has(result.condition)) continue;
        const condition = pagerCondition(result.condition);
        if (result.status === 'failing') {
          const escalation = await deps.escalation.failed(target.name, condition, {
            summary: result.summary,
            severity: result.severity,
            details: { condition: result.condition, evidence: result.evidence },
          });
          log.warn({ target: target.name, condition: result.condition, evidence: result.evidence }, 'health condition failing');
          await say.post(conditionFailing(target.name, result, escalation));
        } else if (previous === 'failing') {
          const resolved = await deps.escalation.passed(target.name, condition, { summary: `${target.name}: ${result.condition} cleared` });
          log.info({ target: target.name, condition: result.condition }, 'health condition cleared');
          await say.post(conditionCleared(target.name, result, null, resolved));
        }
      }
    }
    return { failing };
  };
}
