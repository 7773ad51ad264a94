import { backupDiskCondition, type ConditionResult, diskSubject, resolveThresholds } from '../health/index.ts';
import { formatTime } from '../format.ts';
import type { Logger } from '../logger.ts';
import { report, type TargetHealthDeps } from './health-report.ts';
import { retireOthers } from './retired-subjects.ts';

/**
 * The backup disk as a health subject of its own (health/disk-condition.ts backupDiskCondition): named by the storage
 * (`local:/var/backups/pgbb`), its own state, page (`pg-backup-bot/<storage>/disk`) and posts. Judged from the disk's
 * figure now and each configured target's need (its next backup's size, a run that ran out of space) as its last
 * check left it in Redis, never from one process's memory: every worker host judges it alike, a target whose check
 * failed counts as last checked, a restart forgets nothing, and space freed shows at the next judgment.
 */

export async function judgeBackupDisk(deps: TargetHealthDeps, at: Date, log: Logger): Promise<ConditionResult> {
  const where = diskSubject(deps.storage);
  const configured = new Set(deps.config.targets.map((t) => t.name));
  const [disk, needs] = await Promise.all([deps.storage.freeSpace ? deps.storage.freeSpace() : null, deps.state.diskNeeds(where)]);
  const mine = needs.filter((n) => configured.has(n.target)).sort((a, b) => (a.target < b.target ? -1 : 1));
  const thresholds = resolveThresholds(deps.config.health.thresholds);
  const notOurs = deps.storageMark ? await deps.storageMark().catch((err: unknown) => log.warn({ err }, 'could not read the storage mark') ?? null) : null;
  const judged = notOurs ? notTheStorage(where, notOurs) : backupDiskCondition(where, disk, thresholds, mine, configured.size - mine.length);
  const result = deeper(judged, thresholds.diskFreeMinRatio, (await deps.state.read(where)).disk?.episode);
  for (const a of await deps.state.apply(where, [result], at)) await report(deps, where, a, log);
  // A disk not judged for RETIRED_AFTER_MS (BACKUP_DIR moved, S3 as the primary storage): its failure is cleared.
  await retireOthers(deps, 'disk', where, at, log, (subject, since) => ({
    condition: 'disk',
    severity: 'warning',
    status: 'ok',
    summary: `Backup disk ${subject}: not judged since ${formatTime(since)}`,
    evidence: `no worker has judged it since ${formatTime(since)}: backups are written to ${where} now`,
  }));
  return result;
}

/** A failing disk's depth: under half its free-space limit, then under a quarter. */
const DEPTHS = [undefined, 'under-half-of-limit', 'under-quarter-of-limit'] as const;

/**
 * A disk that goes on filling while it fails is news once per depth reached: under half the limit, then under a
 * quarter, it is posted again (the page stays the one open; QA: a disk paged at 19 % free said nothing more on its
 * way to 2 %). Never back to a shallower depth while it fails: free space moves with every backup and retention run,
 * and a depth's edge must not post every night. The depth is the failure's episode, so it clears with it.
 */
function deeper(r: ConditionResult, limit: number, stored: string | null | undefined): ConditionResult {
  if (r.status !== 'failing' || r.value === undefined) return r;
  const now = r.value < limit / 4 ? 2 : r.value < limit / 2 ? 1 : 0;
  const was = Math.max(0, DEPTHS.indexOf((stored ?? undefined) as (typeof DEPTHS)[number]));
  const depth = DEPTHS[Math.max(now, was)];
  return depth ? { ...r, episode: depth } : r;
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
  const failing = (await deps.state.read(diskSubject(deps.storage))).disk?.status === 'failing';
  return failsNow || failing ? judgeBackupDisk(deps, at, log) : null;
}

/** BACKUP_DIR is not the storage the bot wrote to (a disk not mounted): its free space is some other disk's, and nothing is written there. */
const notTheStorage = (where: string, why: string): ConditionResult => ({
  condition: 'disk',
  severity: 'critical',
  status: 'failing',
  summary: `Backup disk ${where}: not the bot's storage`,
  evidence: why,
  episode: 'not-the-storage',
});
