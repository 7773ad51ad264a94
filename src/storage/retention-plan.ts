import { formatInZone } from '../schedules/time.ts';
import type { Manifest } from './manifest.ts';

/**
 * What the retention job deletes, decided without I/O so every edge is testable. The deadline is the one each
 * manifest carries (written when the backup was made, from its class), so a pre-migration backup keeps its 90
 * days whatever the daily policy says. The executor deletes artifacts first and the manifest last: a crash in
 * between leaves a directory without a valid manifest, which is never listed and is cleaned as unfinished.
 */

const HOUR = 3600 * 1000;
export const UNFINISHED_MAX_AGE_MS = 24 * HOUR;
/**
 * A finished backup past its deadline that is damaged or half-deleted waits until nothing was written to it for this
 * long: a repair rewriting it from a copy, a delete by another run, or a damage mark made by this very run's read-back
 * (second reader: it was marked and deleted in one run, with nobody told). Said in the report while it waits.
 */
export const DAMAGED_QUIET_MS = HOUR;

export type RetentionBackup = Pick<Manifest, 'target' | 'backupId' | 'startedAt' | 'retainUntil' | 'retentionClass'>;

export interface RetentionInput {
  /** Every finished backup (a valid manifest) of every target. */
  backups: readonly RetentionBackup[];
  now: Date;
  /** Backups a restore test is reading right now. */
  runningRestoreTests: ReadonlySet<string>;
  /**
   * Backup directories that are not finished backups, with how long ago they were last written; `what` says what
   * is wrong (default: no manifest).
   */
  unfinished: ReadonlyArray<{ target: string; backupId: string; ageMs: number; what?: string; retainUntil?: string | null }>;
  /**
   * Finished backups the storage found damaged (a manifest that does not parse, an artifact missing or of the wrong
   * size) within their deadline: never deleted here, named in the report for a person to look at.
   */
  damaged?: ReadonlyArray<{ target: string; backupId: string; why: string; marked?: true }>;
  /** Backups a selective restore (`/restore`) is reading right now. */
  runningRestores?: ReadonlySet<string>;
  /** Backups whose last restore test failed: not "good", so they do not count as a target's newest good backup. */
  failedRestoreTests?: ReadonlySet<string>;
  /** Backups being written now: a dump running over a day must not lose its directory. */
  runningBackups?: ReadonlySet<string>;
  /** The zone the report's deadlines are written in (the configured one, as the schedules use); default UTC. */
  timezone?: string;
}

export interface RetentionDecision {
  target: string;
  backupId: string;
  reason: string;
}

export interface RetentionPlan {
  delete: Array<RetentionDecision & { retentionClass: string }>;
  keep: RetentionDecision[];
  cleanUnfinished: RetentionDecision[];
  /** Damaged backups, kept: what is wrong with each (the health check's `damaged` condition pages for them). */
  damaged: RetentionDecision[];
  /** Targets whose deletions were held this run (retention-run.ts keptConfirmed), with why: said in the channel. */
  held?: string[];
}

/** Newest first by startedAt — never by id: ids that sort wrongly by name deleted the newest backups (WAL-G #636). */
function newestFirst(a: RetentionBackup, b: RetentionBackup): number {
  const byTime = Date.parse(b.startedAt) - Date.parse(a.startedAt);
  // Same start instant: `-10` is newer than `-2`, which a plain string compare gets wrong.
  return byTime !== 0 ? byTime : b.backupId.localeCompare(a.backupId, 'en', { numeric: true });
}

/** The one backup per target that must survive: its newest good one, else (none known good) its newest. */
export function protectedNewest(backups: readonly RetentionBackup[], failed: ReadonlySet<string>): Map<string, string> {
  const byTarget = new Map<string, RetentionBackup[]>();
  for (const b of backups) byTarget.set(b.target, [...(byTarget.get(b.target) ?? []), b]);
  const out = new Map<string, string>();
  for (const [target, list] of byTarget) {
    const sorted = [...list].sort(newestFirst);
    const chosen = sorted.find((b) => !failed.has(b.backupId)) ?? sorted[0];
    if (chosen) out.set(target, chosen.backupId);
  }
  return out;
}

export function planRetention(input: RetentionInput): RetentionPlan {
  const now = input.now.getTime();
  const failed = input.failedRestoreTests ?? new Set<string>();
  const newest = protectedNewest(input.backups, failed);
  const time = (iso: string) => formatInZone(new Date(iso), input.timezone ?? 'UTC');
  const plan: RetentionPlan = { delete: [], keep: [], cleanUnfinished: [], damaged: [] };
  for (const b of [...input.backups].sort((x, y) => x.target.localeCompare(y.target) || -newestFirst(x, y))) {
    const base = { target: b.target, backupId: b.backupId };
    if (b.retainUntil === null) {
      plan.keep.push({ ...base, reason: `no deadline (${b.retentionClass}): kept until deleted by hand` });
      continue;
    }
    // At the deadline itself the backup is still within its retention: only strictly later is it expired.
    if (Date.parse(b.retainUntil) >= now) {
      plan.keep.push({ ...base, reason: `retained until ${time(b.retainUntil)} (${b.retentionClass})` });
      continue;
    }
    const expired = `expired ${time(b.retainUntil)} (${b.retentionClass})`;
    if (input.runningRestoreTests.has(b.backupId)) {
      plan.keep.push({ ...base, reason: `${expired}, kept: a restore test of it is running` });
    } else if (input.runningRestores?.has(b.backupId)) {
      plan.keep.push({ ...base, reason: `${expired}, kept: a restore from it is running` });
    } else if (newest.get(b.target) === b.backupId) {
      const what = failed.has(b.backupId) ? 'the newest backup' : 'the newest good backup';
      plan.keep.push({ ...base, reason: `${expired}, kept: ${what} of ${b.target}` });
    } else {
      plan.delete.push({ ...base, retentionClass: b.retentionClass, reason: expired });
    }
  }
  const finished = new Set(input.backups.map((b) => b.backupId));
  for (const u of input.unfinished) {
    if (finished.has(u.backupId) || input.runningBackups?.has(u.backupId)) continue;
    // No manifest: it may be a backup being written, so only one left unwritten for a day is cleaned.
    if (u.retainUntil === undefined && u.ageMs <= UNFINISHED_MAX_AGE_MS) continue;
    // A finished backup's files lost before its deadline were not lost to retention (it deletes only past it): damage,
    // never cleaned. Past it, it goes at the next run (QA: it waited a day after its mark, named nowhere), unless
    // something reads or writes it: a restore can take one whose roles file alone is damaged.
    if (u.retainUntil !== undefined && (u.retainUntil === null || Date.parse(u.retainUntil) >= now)) continue;
    if (u.retainUntil) {
      const base = { target: u.target, backupId: u.backupId };
      const expired = `expired ${time(u.retainUntil)} (${u.what ?? 'damaged'})`;
      if (input.runningRestoreTests.has(u.backupId) || input.runningRestores?.has(u.backupId)) {
        plan.keep.push({ ...base, reason: `${expired}, kept: a restore of it is running` });
        continue;
      }
      if (u.ageMs < DAMAGED_QUIET_MS) {
        plan.keep.push({ ...base, reason: `${expired}, kept: written to within the hour (a repair, or its mark just made); the next run deletes it` });
        continue;
      }
    }
    plan.cleanUnfinished.push({
      target: u.target,
      backupId: u.backupId,
      reason:
        u.retainUntil === undefined
          ? `${u.what ?? 'unfinished (no manifest)'}, last written ${Math.floor(u.ageMs / HOUR)} h ago`
          : `${u.what ?? 'damaged'}, past its deadline (${time(u.retainUntil)})`,
    });
  }
  for (const d of input.damaged ?? []) {
    const then = d.marked
      ? 'kept until its retention deadline, then deleted (one kept without a deadline stays until deleted by hand)'
      : 'not deleted; look at it, then delete it by hand';
    plan.damaged.push({ target: d.target, backupId: d.backupId, reason: `damaged (${d.why}): ${then}` });
  }
  return plan;
}

/**
 * Backups whose latest restore test failed, from records newest first (listRecords' order): not "good", so never
 * the one kept as a target's newest good backup.
 */
export function failedRestoreTestIds(records: ReadonlyArray<{ backupId: string; passed: boolean | null }>): Set<string> {
  const latest = new Map<string, boolean | null>();
  for (const r of records) if (!latest.has(r.backupId)) latest.set(r.backupId, r.passed);
  return new Set([...latest].filter(([, passed]) => passed === false).map(([id]) => id));
}

/** The channel report: what was deleted (or, in a dry run, would be), and what was kept past its deadline and why. */
export function retentionReport(plan: RetentionPlan, dryRun: boolean): string {
  const verb = dryRun ? 'Would delete' : 'Deleted';
  const lines: string[] = [];
  const n = (count: number, one: string) => `${count} ${one}${count === 1 ? '' : 's'}`;
  lines.push(
    `${dryRun ? 'Retention (dry run, nothing deleted)' : 'Retention'}: ${verb.toLowerCase()} ${n(plan.delete.length, 'backup')}` +
      ` and ${n(plan.cleanUnfinished.length, 'unfinished or damaged backup')}; kept ${plan.keep.length}.`,
  );
  for (const d of plan.delete) lines.push(`• ${verb} ${d.backupId}: ${d.reason}`);
  for (const u of plan.cleanUnfinished) lines.push(`• ${verb} ${u.backupId}: ${u.reason}`);
  for (const k of plan.keep.filter((k) => k.reason.startsWith('expired'))) lines.push(`• Kept ${k.backupId}: ${k.reason}`);
  for (const d of plan.damaged ?? []) lines.push(`• Kept ${d.backupId}: ${d.reason}`);
  for (const h of plan.held ?? []) lines.push(`• Held for ${h}`);
  return lines.join('\n');
}
