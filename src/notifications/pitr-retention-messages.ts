import { formatBytes } from '../format.ts';
import { formatInZone } from '../schedules/time.ts';
import type { RecoverableWindow } from '../postgres/pitr/window.ts';
import type { PitrRetentionRun, PitrTargetRetention } from '../postgres/pitr/pitr-retention.ts';

/**
 * PITR retention's part of the retention report (CLI and channel): per target, the recoverable window before and
 * after, the base backups and WAL files deleted (or, dry, that would be), with counts and bytes, and what failed.
 */
type Time = (at: string | Date) => string;
const windowText = (w: RecoverableWindow | null, formatTime: Time) =>
  w
    ? `${formatTime(w.from)} to ${formatTime(w.to)}${
        !w.reachesNewest ? ` (ends at a gap: segment ${w.gap ?? w.gaps[0]} is missing)` : w.gap ? ` (starts after a gap: segment ${w.gap} is missing)` : ''
      }`
    : 'nothing recoverable';

function targetLines(t: PitrTargetRetention, dryRun: boolean, formatTime: Time): string[] {
  const head = `Point-in-time recovery of ${t.target}`;
  if (!t.plan) return [`${head}: could not read its archive, nothing deleted: ${t.error ?? 'unknown error'}`];
  const p = t.plan;
  const will = dryRun ? 'would delete' : 'deleted';
  const baseBytes = dryRun ? p.deleteBases.reduce((n, d) => n + d.base.bytes, 0) : t.deleted.baseBytes;
  const bases = dryRun ? p.deleteBases.length : t.deleted.bases;
  const walFiles = dryRun ? p.deleteWal.length : t.deleted.wal;
  const walBytes = dryRun ? p.deleteWal.reduce((n, e) => n + e.bytes, 0) : t.deleted.walBytes;
  const lines = [
    `${head} (WAL kept ${p.retentionDays} days, so every moment since ${formatTime(p.cutoff)} stays recoverable):`,
    `• window before: ${windowText(p.before, formatTime)}`,
    `• window after: ${windowText(dryRun || t.failures.length === 0 ? p.after : null, formatTime)}${!dryRun && t.failures.length ? ' (not known: some deletions failed)' : ''}`,
    `• base backups: ${will} ${bases} (${formatBytes(baseBytes)}), kept ${p.keepBases.length + t.keptLate.length}`,
  ];
  for (const d of p.deleteBases) if (!t.keptLate.includes(d.base.id)) lines.push(`   – ${d.base.id}, finished ${formatTime(d.base.finishedAt)}: ${d.reason}`);
  for (const k of p.keepBases.filter((k) => k.reason.includes('reading'))) lines.push(`   – kept ${k.base.id}: ${k.reason}`);
  for (const id of t.keptLate) lines.push(`   – kept ${id}: a restore started reading it during retention`);
  lines.push(`• WAL files: ${will} ${walFiles} (${formatBytes(walBytes)})${p.walFrom ? `, kept from ${p.walFrom} on` : ''}`);
  if (p.note) lines.push(`• ${p.note}`);
  for (const f of t.failures) lines.push(`• ${f}`);
  return lines;
}

/** Times in `timezone`, the configured zone (as the schedules and the logical backups' report use). */
export function pitrRetentionReport(run: PitrRetentionRun, timezone = 'UTC'): string {
  const time: Time = (at) => formatInZone(typeof at === 'string' ? new Date(at) : at, timezone);
  return run.targets.flatMap((t) => targetLines(t, run.dryRun, time)).join('\n');
}

/** Worth a channel post: something was (or would be) deleted, kept late, or failed; a quiet day stays in the logs. */
export function pitrRetentionWorthSaying(run: PitrRetentionRun): boolean {
  return run.targets.some((t) => !t.plan || t.failures.length > 0 || t.keptLate.length > 0 || t.plan.deleteBases.length > 0 || t.plan.deleteWal.length > 0);
}

export function pitrRetentionFailed(run: PitrRetentionRun): boolean {
  return run.targets.some((t) => !t.plan || t.failures.length > 0);
}
