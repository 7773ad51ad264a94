import { formatBytes, formatDuration, formatTime } from '../format.ts';
import { type Manifest, type RetentionClass, totalBytes } from '../storage/index.ts';
import { type ConditionResult, type HealthThresholds, MIN_SIZE_HISTORY } from './types.ts';

/** Conditions read from the finished backups themselves. Each takes the backups sorted newest first. */

const HOUR_MS = 60 * 60 * 1000;

function ageOf(m: Manifest, now: Date): number {
  // The data is as old as the snapshot pg_dump took at the start, not as old as the moment it finished.
  return Math.max(0, now.getTime() - Date.parse(m.startedAt));
}

interface StaleCheck {
  cls: RetentionClass | null;
  limitHours: number;
  newest: Manifest | undefined;
  ageMs: number;
}

/**
 * How long after its first scheduled run a never-backed-up target may still have no backup before it pages: the run
 * itself takes time, and the target's later limits (target-thresholds.ts) allow the same hour.
 */
export const FIRST_BACKUP_GRACE_MS = HOUR_MS;

/**
 * A target never backed up, before its first scheduled backup is due (+ grace): a warning nobody is paged for. A new
 * install has no backup by definition; paging critical for it would be a false alarm on day one, and one that only
 * the next health run would clear.
 */
function awaitingFirstBackup(target: string, now: Date, dueAt: Date): ConditionResult | null {
  const lateAt = new Date(dueAt.getTime() + FIRST_BACKUP_GRACE_MS);
  if (now.getTime() >= lateAt.getTime()) return null;
  return {
    condition: 'stale',
    status: 'failing',
    severity: 'warning',
    quiet: true,
    summary: `No backup of ${target} yet: the first scheduled one is due at ${formatTime(dueAt)}`,
    evidence: `no backup of ${target} yet; the first scheduled backup is due at ${formatTime(dueAt)} (critical if there is none by ${formatTime(lateAt)})`,
  };
}

/**
 * `damaged`: how many stored backups listing left out as damaged. With none good left, "no backup yet" would send
 * the on-call engineer after a backup that never ran: it says they are damaged instead (the `damaged` condition).
 */
export function staleCondition(
  target: string,
  now: Date,
  newestFirst: Manifest[],
  t: HealthThresholds,
  firstBackupDueAt?: Date,
  damaged = 0,
  /** Of `damaged`, those whose roles file alone is: their database archive restores, so not "no restorable" (QA). */
  archiveIntact = 0,
  /** Backup jobs of the target running now: one begun after the newest backup is on time until it is slow. */
  running: ReadonlyArray<{ startedAt: Date }> = [],
): ConditionResult {
  const waiting = newestFirst.length === 0 && firstBackupDueAt && damaged === 0 ? awaitingFirstBackup(target, now, firstBackupDueAt) : null;
  if (waiting) return waiting;
  const overrides = Object.entries(t.staleHoursByClass).filter((e): e is [RetentionClass, number] => e[1] !== undefined);
  const wanted: Array<[RetentionClass | null, number]> = overrides.length > 0 ? overrides : [[null, t.staleHours]];
  const checks: StaleCheck[] = wanted.map(([cls, limitHours]) => {
    const newest = cls === null ? newestFirst[0] : newestFirst.find((m) => m.retentionClass === cls);
    return { cls, limitHours, newest, ageMs: newest ? ageOf(newest, now) : Number.POSITIVE_INFINITY };
  });
  const overBy = (c: StaleCheck) => c.ageMs / (c.limitHours * HOUR_MS);
  const worst = checks.reduce((a, b) => (overBy(b) > overBy(a) ? b : a));
  // The run that makes the next backup, while it runs within `slow`'s limit: the limit is one hour past the schedule's
  // longest wait, and a dump of one to two hours (fine by `slow`) paged `stale` critical at every run (QA).
  const newestAt = worst.newest ? Date.parse(worst.newest.startedAt) : Number.NEGATIVE_INFINITY;
  const onTime = running.find((r) => r.startedAt.getTime() > newestAt && now.getTime() - r.startedAt.getTime() <= t.slowMs);
  const failing = worst.ageMs > worst.limitHours * HOUR_MS && !onTime;
  const grace =
    onTime && worst.ageMs > worst.limitHours * HOUR_MS
      ? `; a backup running since ${formatTime(onTime.startedAt)} counts as on time until it has run ${formatDuration(t.slowMs)}`
      : '';
  const what = (c: StaleCheck) => (c.cls === null ? 'backup' : `${c.cls} backup`);
  const none = (c: StaleCheck) =>
    damaged > 0 && newestFirst.length === 0
      ? `no ${archiveIntact === damaged ? 'whole' : 'restorable'} ${what(c)} of ${target}: ${damaged} stored ${damaged === 1 ? 'is' : 'are'} damaged${archiveIntact ? ` (${archiveIntact === damaged ? '' : `${archiveIntact} of them `}only in the roles file: restorable without --with-globals)` : ''}`
      : `no ${what(c)} of ${target} yet`;
  const describe = (c: StaleCheck) =>
    c.newest ? `newest ${what(c)} ${formatDuration(c.ageMs)} old (${formatTime(c.newest.startedAt)}), limit ${c.limitHours} h` : none(c);
  // Damaged backups stored: the first backup ran long ago, whatever the first-seen time says (QA: "was due at" a future time).
  const late = newestFirst.length === 0 && damaged === 0 && firstBackupDueAt ? ` (the first was due at ${formatTime(firstBackupDueAt)})` : '';
  const headline = worst.newest ? `the newest ${what(worst)} is ${formatDuration(worst.ageMs)} old (limit ${worst.limitHours} h)` : `${none(worst)}${late}`;
  return {
    condition: 'stale',
    status: failing ? 'failing' : 'ok',
    severity: 'critical',
    summary: failing ? `Backups of ${target} are stale: ${headline}` : `Backups of ${target} are fresh: ${headline}`,
    evidence: checks.map(describe).join('; ') + late + grace,
    ...(worst.newest ? { value: worst.ageMs } : {}),
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** "−62 %" / "+51 %": the Unicode minus reads as a sign, not a hyphen, in Slack and PagerDuty. */
function signedPercent(ratio: number): string {
  const pct = Math.round((ratio - 1) * 100);
  return pct < 0 ? `−${-pct} %` : `+${pct} %`;
}

/**
 * What a condition judged on the newest good backup says when there is none: "no backup yet" only when none is stored
 * at all; with every one stored damaged, that would send the on-call engineer after a backup that never ran.
 */
export const noGoodBackup = (damaged = 0): string =>
  damaged > 0 ? `no good backup (the ${damaged} stored ${damaged === 1 ? 'is' : 'are'} damaged)` : 'no backup yet';

export function sizeCondition(target: string, newestFirst: Manifest[], t: HealthThresholds, damaged = 0): ConditionResult {
  const base = { condition: 'size', severity: 'warning' } as const;
  const newest = newestFirst[0];
  const none = noGoodBackup(damaged);
  if (!newest) return { ...base, status: 'ok', unjudged: true, summary: `Backup size of ${target} cannot be judged: ${none}`, evidence: none };
  const bytes = totalBytes(newest);
  const problems: string[] = [];
  const parts = [formatBytes(bytes)];
  if (t.minBytes !== null && bytes < t.minBytes) {
    problems.push(`below the minimum of ${formatBytes(t.minBytes)}`);
    parts.push(`minimum ${formatBytes(t.minBytes)}`);
  }
  const previous = newestFirst.slice(1, 1 + t.sizeWindow).map(totalBytes);
  if (previous.length < MIN_SIZE_HISTORY) {
    parts.push(`not enough history (${previous.length} earlier backup${previous.length === 1 ? '' : 's'}, ${MIN_SIZE_HISTORY} needed)`);
  } else {
    const med = median(previous);
    // An empty history median would make every ratio infinite; call any non-empty backup after it "too large".
    const ratio = med > 0 ? bytes / med : bytes > 0 ? Number.POSITIVE_INFINITY : 1;
    const change = Number.isFinite(ratio) ? `${signedPercent(ratio)} vs` : 'vs';
    parts[0] = `${formatBytes(bytes)}, ${change} median ${formatBytes(med)} of the previous ${previous.length}`;
    if (ratio < t.sizeLowRatio) problems.push(`too small`);
    if (ratio > t.sizeHighRatio) problems.push(`too large`);
  }
  const evidence = parts.join(', ');
  // Without history (and no minimum broken) nothing was compared: not judged, never a check mark (QA).
  const unjudged = problems.length === 0 && previous.length < MIN_SIZE_HISTORY;
  return {
    ...base,
    status: problems.length > 0 ? 'failing' : 'ok',
    ...(unjudged ? { unjudged: true } : {}),
    summary:
      problems.length > 0
        ? `Backup size of ${target} looks wrong (${problems.join(', ')}): ${evidence}`
        : unjudged
          ? `Backup size of ${target} cannot be judged yet: ${evidence}`
          : `Backup size of ${target} looks normal: ${evidence}`,
    evidence,
    value: bytes,
  };
}

export function slowCondition(
  target: string,
  now: Date,
  newestFirst: Manifest[],
  running: Array<{ jobId: string; startedAt: Date }>,
  t: HealthThresholds,
  damaged = 0,
): ConditionResult {
  const base = { condition: 'slow', severity: 'warning' } as const;
  const limit = `limit ${formatDuration(t.slowMs)}`;
  const candidates: Array<{ ms: number; text: string }> = running.map((r) => {
    const ms = Math.max(0, now.getTime() - r.startedAt.getTime());
    return { ms, text: `job ${r.jobId} has been running for ${formatDuration(ms)} (since ${formatTime(r.startedAt)})` };
  });
  const newest = newestFirst[0];
  if (newest) candidates.push({ ms: newest.durationMs, text: `the newest backup took ${formatDuration(newest.durationMs)}` });
  if (candidates.length === 0)
    return { ...base, status: 'ok', unjudged: true, summary: `Backups of ${target} are not slow: ${noGoodBackup(damaged)}`, evidence: noGoodBackup(damaged) };
  const worst = candidates.reduce((a, b) => (b.ms > a.ms ? b : a));
  const failing = worst.ms > t.slowMs;
  return {
    ...base,
    status: failing ? 'failing' : 'ok',
    summary: failing ? `Backups of ${target} are slow: ${worst.text} (${limit})` : `Backups of ${target} are not slow: ${worst.text} (${limit})`,
    evidence: `${candidates.map((c) => c.text).join('; ')}; ${limit}`,
    value: worst.ms,
  };
}
