import { formatDuration, formatTime } from '../format.ts';
import { setAsideNamed } from '../postgres/pitr/window.ts';
import type { BaseBackupHealth, ConditionResult } from './types.ts';

const HOUR_MS = 3600_000;

/** Ages of days read as days ("8 days", "9.5 days"), shorter ones as formatDuration says them. */
function age(ms: number): string {
  if (ms < 48 * HOUR_MS) return formatDuration(Math.max(0, Math.round(ms)));
  const days = ms / (24 * HOUR_MS);
  return `${Number.isInteger(days) ? days : days.toFixed(1)} days`;
}

/**
 * How long a target with point-in-time recovery may go without any base backup from when the bot first watched it:
 * a worker takes the first one at start (workers/base-backup-jobs.ts), and a large cluster takes hours to copy.
 */
export const FIRST_BASE_BACKUP_GRACE_MS = 24 * HOUR_MS;

/**
 * `base-backup` (error, dedup key `pg-backup-bot/<target>/base-backup`, the one the base-backup worker pages with):
 * the last run failed, or the newest base backup is older than `maxAgeHours`, or there is none once the target has
 * had a day to take one. Without a base backup nothing is recoverable to a point in time, whatever WAL is archived;
 * an old one means a long replay and WAL that cannot expire.
 *
 * A failed run is failing but quiet here: the worker that ran it has already posted the verdict and paged under the
 * same key, and resolves that page on the next success, so health shows it (`/backup health`, `check`, /metrics)
 * without telling anyone twice. "Too old" and "none" are nobody's job but health's: loud, paged, posted.
 */
export function baseBackupCondition(target: string, now: Date, b: BaseBackupHealth): ConditionResult {
  const base = { condition: 'base-backup', severity: 'error' } as const;
  const limit = `limit ${age(b.maxAgeHours * HOUR_MS)}`;
  const newest = b.newest ? `newest ${b.newest.id}, finished ${formatTime(b.newest.finishedAt)}` : 'no base backup yet';
  if (b.lastRun && !b.lastRun.ok) {
    const job = b.lastRun.jobId ? ` (job ${b.lastRun.jobId})` : '';
    const reason = b.lastRun.reason ?? 'no reason recorded';
    return {
      ...base,
      status: 'failing',
      summary: `The last base backup of ${target} failed: ${reason}`,
      evidence: `last run failed at ${formatTime(b.lastRun.at)}${job}: ${reason}; ${newest}`,
      quiet: true,
    };
  }
  if (!b.newest) {
    const since = b.watchedSince;
    const take = `Take one: \`/backup now --physical ${target}\` (or \`pg-backup-bot base-backup ${target}\`)`;
    const aside = b.setAside ?? [];
    // Taken, then found damaged: not "yet", and no first-backup grace (the `damaged` condition says which file).
    if (aside.length > 0) {
      return {
        ...base,
        status: 'failing',
        summary: `${target} has no good base backup: point-in-time recovery has nothing to start from`,
        evidence: `no good base backup of ${target}: ${setAsideNamed(aside)} set aside as damaged by the checksum scrub, so nothing is recoverable to a point in time. ${take}`,
      };
    }
    const evidence = `no base backup of ${target}: nothing is recoverable to a point in time. ${take}`;
    if (since && now.getTime() - since.getTime() < FIRST_BASE_BACKUP_GRACE_MS) {
      const due = new Date(since.getTime() + FIRST_BASE_BACKUP_GRACE_MS);
      return {
        ...base,
        status: 'failing',
        summary: `${target} has no base backup yet`,
        evidence: `${evidence} (first one due by ${formatTime(due)})`,
        quiet: true,
      };
    }
    return { ...base, status: 'failing', summary: `${target} has no base backup: point-in-time recovery has nothing to start from`, evidence };
  }
  const ageMs = now.getTime() - Date.parse(b.newest.finishedAt);
  const evidence = `${newest} (${age(ageMs)} ago), ${limit}`;
  if (ageMs > b.maxAgeHours * HOUR_MS) {
    return { ...base, status: 'failing', summary: `The newest base backup of ${target} is too old`, evidence, value: ageMs };
  }
  return { ...base, status: 'ok', summary: `The newest base backup of ${target} is recent`, evidence, value: ageMs };
}
