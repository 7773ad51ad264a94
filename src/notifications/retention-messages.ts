import { retentionReport } from '../storage/index.ts';
import type { RetentionRun, StorageRetention } from '../storage/index.ts';
import { escapeMrkdwn } from '../format.ts';

/** What a retention run did, as counts: the worker's job result (for the weekly checklist) and the "say it?" rule. */
export interface RetentionSummary {
  dryRun: boolean;
  /** Expired backups deleted (in a dry run: that would be). */
  deleted: number;
  /** Unfinished backup directories cleaned (in a dry run: that would be). */
  cleaned: number;
  /** Backups past their deadline kept anyway (the newest good one, one being restored). */
  keptPastDeadline: number;
  /** Deletions that failed. */
  failed: number;
  /** Targets whose deletions were held: the backup kept as newest good could not be read back (retention-run.ts). */
  held?: number;
  /** Storages that could not be read at all. */
  unreadable: string[];
}

export function retentionSummary(run: RetentionRun): RetentionSummary {
  const sum: RetentionSummary = { dryRun: run.dryRun, deleted: 0, cleaned: 0, keptPastDeadline: 0, failed: 0, unreadable: [], held: 0 };
  for (const s of run.storages) {
    if (!s.plan) {
      sum.unreadable.push(s.storage);
      continue;
    }
    const failed = new Set(s.outcomes.filter((o) => o.error !== null).map((o) => `${o.what}:${o.backupId}`));
    sum.failed += failed.size;
    sum.deleted += s.plan.delete.filter((d) => !failed.has(`expired:${d.backupId}`)).length;
    sum.cleaned += s.plan.cleanUnfinished.filter((u) => !failed.has(`unfinished:${u.backupId}`)).length;
    sum.keptPastDeadline += s.plan.keep.filter((k) => k.reason.startsWith('expired')).length;
    sum.held = (sum.held ?? 0) + (s.plan.held?.length ?? 0);
  }
  return sum;
}

/**
 * Whether the run is worth a channel message. #incidents is read by people on call: a daily "nothing expired" line
 * is noise that teaches them to skim the channel, so a run that deleted nothing, would delete nothing and failed at
 * nothing stays in the logs and the job's result (which the weekly checklist reads). Backups kept past their
 * deadline alone are not news either: the newest good backup of a target that stopped backing up is kept every day,
 * and the health job already pages for the stale target.
 */
export function retentionWorthSaying(sum: RetentionSummary): boolean {
  return sum.deleted + sum.cleaned + sum.failed + sum.unreadable.length + (sum.held ?? 0) > 0;
}

function section(s: StorageRetention, dryRun: boolean, maxLines: number): string[] {
  const where = `${s.storage}${s.role === 'copy' ? ' (copy)' : ''}`;
  if (!s.plan) return [`Retention on ${where}: could not read it, nothing deleted there: ${s.error ?? 'unknown error'}`];
  const failures = s.outcomes.filter((o) => o.error !== null);
  const failed = new Set(failures.map((o) => `${o.what}:${o.backupId}`));
  // Failed deletions are not reported as deleted: they get lines of their own, first, since they need a person.
  const done = {
    ...s.plan,
    delete: s.plan.delete.filter((d) => !failed.has(`expired:${d.backupId}`)),
    cleanUnfinished: s.plan.cleanUnfinished.filter((u) => !failed.has(`unfinished:${u.backupId}`)),
  };
  const [head = '', ...rest] = retentionReport(done, dryRun).split('\n');
  const lines = [`${head.replace(/^Retention/, `Retention on ${where}`)}${failures.length ? ` ${failures.length} could NOT be deleted.` : ''}`];
  for (const f of failures) lines.push(`• Could NOT delete ${f.backupId} (${f.reason}): ${f.error ?? ''}`);
  lines.push(...rest.slice(0, maxLines));
  if (rest.length > maxLines) lines.push(`• … and ${rest.length - maxLines} more (\`pg-backup-bot retention --dry-run\` lists them all)`);
  return lines;
}

/** The whole report, one section per storage (primary first). `maxLines` caps each section's list for the channel. */
export function retentionRunReport(run: RetentionRun, maxLines = Number.POSITIVE_INFINITY): string {
  return run.storages.flatMap((s) => section(s, run.dryRun, maxLines)).join('\n');
}

/** The channel message: the report, capped, escaped, flagged when something needs a person. */
export function retentionMessage(run: RetentionRun): { text: string } {
  const sum = retentionSummary(run);
  const flag = sum.failed > 0 || sum.unreadable.length > 0 ? ':warning: ' : ':wastebasket: ';
  return { text: flag + escapeMrkdwn(retentionRunReport(run, 30)) };
}
