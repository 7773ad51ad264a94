import type { Queue } from 'bullmq';
import type { Config } from '../config.ts';
import type { AppliedResult, HealthState, RunLog } from '../health/index.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import type { Storage } from '../storage/index.ts';
import { pagerCondition } from '../health/index.ts';
import type { Logger } from '../logger.ts';
import { conditionCleared, conditionFailing } from '../notifications/health-messages.ts';
import type { Escalation } from '../notifications/escalation.ts';
import type { Notifier } from '../notifications/types.ts';
import { quietNotifier } from './quiet-notifier.ts';
import { TargetName } from '../target-name.ts';
import type { AfterBreak } from './base-backup-after-break.ts';
import type { PromotionNotice } from './promotion-notice.ts';

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
  /** Starts a base backup when a check finds the window broken (base-backup-after-break.ts); absent: never. */
  afterBreak?: AfterBreak;
  /** Tells the channel once of a promotion the WAL archive follows (promotion-notice.ts); absent: never. */
  promotionNotice?: PromotionNotice;
  /** Whether BACKUP_DIR is the bot's storage (storage/storage-mark.ts), judged with the disk; absent: not asked. */
  storageMark?: () => Promise<string | null>;
}

// The backup and restore-test workers already post and page their own failures (PITR restore tests too); the health
// checks track these (for /backup health, `check` and /metrics) but leave the talking to them, so nobody hears of a
// failure twice.
const REPORTED_BY_WORKERS = new Set(['backup-failing', 'restore-test-failing', 'pitr-test-failing']);
const UNPAGED = 'posted here, not paged (the config can make it page)';

/**
 * What a remembered change of one condition means for people: a failure that starts pages once and posts once; one
 * that clears resolves its page and says so. `target` is the subject: a target, or the backup disk (disk-health.ts).
 */
export async function report(deps: { notifier: Notifier; escalation: Escalation }, target: string, a: AppliedResult, log: Logger): Promise<void> {
  const { result, changed, previous, previousQuiet, previousEpisode } = a;
  if (!changed || REPORTED_BY_WORKERS.has(result.condition)) return;
  const say = quietNotifier(deps.notifier, log);
  const condition = pagerCondition(result.condition);
  if (result.status === 'failing') {
    if (result.quiet) {
      // A target's disk, loud before (its page open, from a version that paged per target), quiet now: the storage-
      // wide condition pages for it (disk-health.ts), so that page is resolved, and nothing posted. The disk alone:
      // other conditions go quiet while their failure stands (a base backup the worker has just paged as failed, a
      // slot that could not be read), and their page must stay open (second reader).
      // `unchecked` likewise: paged once for the storage (unchecked-health.ts), no longer per target. A target's own
      // only (a target's name is a TargetName; a storage's, `local:/…` or `s3://…`, never is): the storage's own
      // never turns quiet once paged.
      const perTarget = result.condition === 'unchecked' && TargetName.safeParse(target).success;
      const paged = result.condition === 'disk' ? 'its backup disk' : perTarget ? 'a health check that cannot run' : null;
      if (paged && previous === 'failing' && !previousQuiet) {
        await deps.escalation.passed(target, condition, { summary: `${target}: ${paged} is paged once for every target now (${result.summary})` });
      }
      const why = paged ? 'health condition failing, paged for the storage' : 'health condition failing, not paged';
      log.info({ target, condition: result.condition, evidence: result.evidence }, why);
      return;
    }
    // A warning posted for people to read, not worth waking anyone (data-drift unless the config says page).
    const escalation = result.unpaged
      ? UNPAGED
      : await deps.escalation.failed(target, condition, {
          summary: result.summary,
          severity: result.severity,
          details: { condition: result.condition, evidence: result.evidence },
          episode: result.episode,
        });
    log.warn({ target, condition: result.condition, evidence: result.evidence }, 'health condition failing');
    await say.post(conditionFailing(target, result, escalation));
  } else if (previous === 'failing') {
    const resolved = await deps.escalation.passed(target, condition, { summary: `${target}: ${result.condition} cleared` });
    log.info({ target, condition: result.condition }, 'health condition cleared');
    // A quiet failure was never posted: its end is news only if a page was open after all.
    if (!previousQuiet || resolved) await say.post(conditionCleared(target, result, null, resolved, previousEpisode));
  }
}
