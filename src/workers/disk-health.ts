import { backupDiskCondition, type ConditionResult, resolveThresholds } from '../health/index.ts';
import type { Logger } from '../logger.ts';
import { report, type TargetHealthDeps } from './health-report.ts';

/**
 * The backup disk as a health subject of its own (health/disk-condition.ts backupDiskCondition): named by the storage
 * (`local:/var/backups/pgbb`), its own state, page (`pg-backup-bot/<storage>/disk`) and posts. Judged from the disk's
 * figure now and each configured target's need (its next backup's size, a run that ran out of space) as its last
 * check left it in Redis, never from one process's memory: every worker host judges it alike, a target whose check
 * failed counts as last checked, a restart forgets nothing, and space freed shows at the next judgment.
 */
const KIND = 'disk';

/** The dedup key holds the subject: PagerDuty takes 255 characters, so a very long path keeps its end. */
export function diskSubject(deps: Pick<TargetHealthDeps, 'storage'>): string {
  const described = deps.storage.describe();
  return described.length > 200 ? `…${described.slice(-199)}` : described;
}

export async function judgeBackupDisk(deps: TargetHealthDeps, at: Date, log: Logger): Promise<ConditionResult> {
  const where = diskSubject(deps);
  const configured = new Set(deps.config.targets.map((t) => t.name));
  const [disk, needs] = await Promise.all([deps.storage.freeSpace ? deps.storage.freeSpace() : null, deps.state.diskNeeds(where)]);
  const mine = needs.filter((n) => configured.has(n.target)).sort((a, b) => (a.target < b.target ? -1 : 1));
  const result = backupDiskCondition(where, disk, resolveThresholds(deps.config.health.thresholds), mine, configured.size - mine.length);
  for (const a of await deps.state.apply(where, [result], at)) await report(deps, where, a, log);
  // A disk judged before and not any more (BACKUP_DIR moved, S3 as the primary storage): its failure is cleared, so
  // its page does not stay open for good.
  for (const other of await deps.state.otherSubjects(KIND, where)) {
    if ((await deps.state.read(other)).disk?.status === 'failing') {
      const moved: ConditionResult = {
        condition: 'disk',
        severity: 'warning',
        status: 'ok',
        summary: `Backup disk ${other}: backups are no longer written there`,
        evidence: `backups are written to ${where} now`,
      };
      for (const a of await deps.state.apply(other, [moved], at)) await report(deps, other, a, log);
    }
    await deps.state.forgetSubject(KIND, other);
  }
  return result;
}

/**
 * After a job of one target (its check done): the disk is judged again when it is failing as remembered, so its page
 * resolves seconds after a backup that fits, or when that target's own disk now fails. Else nothing to change.
 */
export async function judgeBackupDiskAfter(
  deps: TargetHealthDeps,
  results: readonly ConditionResult[],
  at: Date,
  log: Logger,
): Promise<ConditionResult | null> {
  const failsNow = results.some((r) => r.condition === 'disk' && r.status === 'failing');
  const failing = (await deps.state.read(diskSubject(deps))).disk?.status === 'failing';
  return failsNow || failing ? judgeBackupDisk(deps, at, log) : null;
}
