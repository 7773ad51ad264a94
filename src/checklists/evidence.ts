import type { TargetConfig } from '../config.ts';
import type { PreMigrationBackupResult, PreMigrationRestoreResult } from '../jobs/checklist-data.ts';
import { formatBytes, formatDuration } from '../format.ts';
import type { Verification } from '../notifications/checklists.ts';
import { formatInZone, zonedParts } from '../schedules/index.ts';
import { totalBytes, type Manifest } from '../storage/index.ts';

/** Evidence sentences for checklist items, pure: what a person on call reads next to a box the bot ticked. */

const DAY_MS = 24 * 3600 * 1000;
const pad = (n: number) => String(n).padStart(2, '0');

/** `02:00` within the last day (the checklist is read that morning), else the full local time with its offset. */
export function clock(at: Date | string, now: Date, tz: string): string {
  const d = typeof at === 'string' ? new Date(at) : at;
  if (now.getTime() - d.getTime() < DAY_MS) {
    const p = zonedParts(d, tz);
    return `${pad(p.hour)}:${pad(p.minute)}`;
  }
  return formatInZone(d, tz);
}

/** "+2 %" / "−38 %": the Unicode minus reads as a sign in Slack (as the health checks write it). */
function signedPercent(ratio: number): string {
  const pct = Math.round((ratio - 1) * 100);
  return pct < 0 ? `−${-pct} %` : `+${pct} %`;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** "157 MB, +2 % vs 7-day median (154 MB)": the newest backup against the backups of the 7 days before it. */
export function sizeAgainstWeek(newest: Manifest, backups: readonly Manifest[]): string {
  const bytes = totalBytes(newest);
  const start = Date.parse(newest.startedAt);
  const week = backups.filter((b) => b.backupId !== newest.backupId && Date.parse(b.startedAt) < start && Date.parse(b.startedAt) >= start - 7 * DAY_MS);
  if (week.length === 0) return `${formatBytes(bytes)}, no earlier backup in the 7 days before`;
  const med = median(week.map(totalBytes));
  return med > 0 ? `${formatBytes(bytes)}, ${signedPercent(bytes / med)} vs 7-day median (${formatBytes(med)})` : `${formatBytes(bytes)}, 7-day median 0 B`;
}

/** Whether `at` falls in the same calendar month (or quarter) as `now`, in the configured zone. */
export function samePeriod(at: Date, now: Date, tz: string, period: 'month' | 'quarter'): boolean {
  const a = zonedParts(at, tz);
  const n = zonedParts(now, tz);
  if (a.year !== n.year) return false;
  return period === 'month' ? a.month === n.month : Math.floor((a.month - 1) / 3) === Math.floor((n.month - 1) / 3);
}

/** The first day of `now`'s month or quarter, `2026-10-01`. */
export function periodStart(now: Date, tz: string, period: 'month' | 'quarter'): string {
  const n = zonedParts(now, tz);
  const month = period === 'month' ? n.month : Math.floor((n.month - 1) / 3) * 3 + 1;
  return `${n.year}-${pad(month)}-01`;
}

/** Targets tested quarterly are judged on the quarter; everything else on the month. */
export function restoreTestPeriod(t: TargetConfig): 'month' | 'quarter' {
  return t.policy.restoreTest?.cadence === 'quarterly' ? 'quarter' : 'month';
}

/** The pre-migration checklist's two bot items, from the results the backup and restore-test jobs handed on. */
export function preMigrationVerifications(
  backup: PreMigrationBackupResult,
  test: PreMigrationRestoreResult | null,
  tz: string,
): { 'pre-migration-backup': Verification; 'pre-migration-restore-tested': Verification } {
  const made: Verification = backup.ok
    ? {
        ok: true,
        evidence: `${backup.backupId}: ${formatBytes(backup.bytes)} in ${formatDuration(backup.durationMs)}, kept until ${backup.retainUntil ? formatInZone(new Date(backup.retainUntil), tz) : 'deleted by hand'}`,
      }
    : { ok: false, evidence: `backup FAILED (job ${backup.jobId}): ${backup.reason}` };
  let tested: Verification;
  if (test === null) tested = { ok: false, evidence: 'not run: there is no backup to test' };
  else if (test.passed === true) {
    const tables = test.checked ? `; ${test.checked}` : test.tables !== null ? `, row counts of ${test.tables} tables equal` : '';
    const whole = test.durationMs !== null ? ` (whole test ${formatDuration(test.durationMs)})` : '';
    tested = { ok: true, evidence: `restore test passed: restore time (RTO) ${formatDuration(test.restoreMs ?? 0)}${whole}${tables}` };
  } else if (test.passed === false) {
    const whole = test.durationMs !== null ? ` after ${formatDuration(test.durationMs)}` : '';
    tested = { ok: false, evidence: `restore test FAILED${whole}: ${test.problems[0] ?? 'no problem recorded'}` };
  } else {
    tested = { ok: false, evidence: `restore test could not run: ${test.problems[0] ?? 'no reason recorded'}` };
  }
  return { 'pre-migration-backup': made, 'pre-migration-restore-tested': tested };
}
