import type { Job, Queue } from 'bullmq';
import type { BackupJobData } from '../jobs/queues.ts';
import { escapeMrkdwn, formatBytes, formatCount, formatDuration, formatTime } from '../format.ts';
import type { Manifest } from '../storage/index.ts';
import { totalBytes, totalRows } from '../storage/index.ts';
import { UNFINISHED_MAX_AGE_MS } from '../storage/retention-plan.ts';

/**
 * `scheduled (frequent)`, `pre-migration JIRA-1234`, `manual`: at 3 a.m. the backup to restore is found by its
 * migration's ticket or its schedule's class, which the kind alone does not tell apart.
 */
export function kindLabel(m: Pick<Manifest, 'kind' | 'retentionClass' | 'label'>): string {
  const kind = m.kind === 'scheduled' ? `scheduled (${m.retentionClass})` : m.kind;
  return m.label ? `${kind} ${escapeMrkdwn(m.label)}` : kind;
}

/**
 * `takeOne`: the command that takes a first backup where the list is read (Slack's, or the CLI's); `time`: how a
 * time is written there (Slack's per-reader date token, or the configured zone in a terminal).
 */
export function formatBackupList(
  backups: Manifest[],
  target: string | undefined,
  o: {
    time: (at: Date) => string;
    limit?: number;
    takeOne?: string;
    damaged?: Array<{ backupId: string; why: string; archiveIntact?: true; expired?: string }>;
    /** Backups whose latest restore test failed (retention-plan.ts failedRestoreTestIds): listed, but not good. */
    failedTests?: ReadonlySet<string>;
    /** Directories without a manifest, unwritten for an hour (catalog.ts strayBackups). */
    stray?: Array<{ backupId: string; modifiedAt: Date; path: string }>;
    now?: Date;
  },
): string {
  const { limit = 10, takeOne = '/backup now' } = o;
  // Left out of the list because a file is missing or wrong: said, never silently gone.
  const current = o.damaged?.filter((d) => !d.expired) ?? [];
  const lost = current.filter((d) => !d.archiveIntact);
  const rolesOnly = current.filter((d) => d.archiveIntact);
  // Past its deadline: retention's to delete at its next run (or to finish deleting), said with when (QA: it was in
  // no report until then), apart from the damage a person must look at.
  const expired = o.damaged?.filter((d) => d.expired) ?? [];
  const named = (ds: typeof lost) =>
    `${ds
      .slice(0, 5)
      .map((d) => `\`${d.backupId}\` (${escapeMrkdwn(d.why)}${d.expired ? `; deadline ${o.time(new Date(d.expired))}` : ''})`)
      .join('; ')}${ds.length > 5 ? `; and ${ds.length - 5} more` : ''}`;
  const one = (ds: unknown[], a: string, b: string) => (ds.length === 1 ? a : b);
  const damaged = [
    lost.length
      ? `\n:warning: ${lost.length} backup${one(lost, ' is', 's are')} not listed, damaged (the bot cannot restore ${one(lost, 'it', 'them')}): ${named(lost)}`
      : '',
    // Its roles file alone: the database archive restores (QA: "cannot be restored" of a backup every restore without --with-globals took).
    rolesOnly.length
      ? `\n:warning: ${rolesOnly.length} backup${one(rolesOnly, ' is', 's are')} not listed, ${one(rolesOnly, 'its', 'their')} roles file damaged: ${one(rolesOnly, 'its', 'their')} database archive is intact: restores without \`--with-globals\` take ${one(rolesOnly, 'it', 'them')} (restore tests, which prove the whole backup, do not): ${named(rolesOnly)}`
      : '',
    expired.length
      ? `\n:wastebasket: ${expired.length} backup${one(expired, ' is', 's are')} not listed, damaged or half-deleted and past ${one(expired, 'its', 'their')} retention deadline: the next retention run deletes ${one(expired, 'it', 'them')}: ${named(expired)}`
      : '',
    strayLine(o.stray ?? [], o.now ?? new Date(), o.time),
  ].join('');
  const of = target ? ` of *${target}*` : '';
  if (backups.length === 0 && lost.length + expired.length)
    return `No restorable backups${of}. Take a new one with \`${takeOne}${target ? ` ${target}` : ''}\`, and check the storage.${damaged}`;
  if (backups.length === 0 && rolesOnly.length)
    return `No whole backups${of}. Take a new one with \`${takeOne}${target ? ` ${target}` : ''}\`, and check the storage.${damaged}`;
  if (backups.length === 0) return `No finished backups${of} yet. Take one with \`${takeOne}${target ? ` ${target}` : ''}\`.${damaged}`;
  const shown = backups.slice(0, limit);
  const lines = shown.map(
    (m) =>
      `• \`${m.backupId}\` · ${o.time(new Date(m.startedAt))} · ${formatBytes(totalBytes(m))} · ${formatDuration(m.durationMs)} · ${formatCount(totalRows(m))} rows · ${kindLabel(m)} · kept until ${m.retainUntil ? o.time(new Date(m.retainUntil)) : '—'}${o.failedTests?.has(m.backupId) ? ' · :x: its restore test FAILED' : ''}`,
  );
  const more = backups.length > limit ? `\n… and ${backups.length - limit} older` : '';
  return `*Backups${target ? ` of ${target}` : ''}* (newest first, ${backups.length} in all):\n${lines.join('\n')}${more}${damaged}`;
}

/** Directories without a manifest: no backup to list, but files a person may want, which retention will delete. */
function strayLine(stray: Array<{ backupId: string; modifiedAt: Date; path: string }>, now: Date, time: (at: Date) => string): string {
  if (stray.length === 0) return '';
  const named = stray
    .slice(0, 5)
    .map(
      (d) =>
        `\`${d.backupId}\` (last written ${formatDuration(now.getTime() - d.modifiedAt.getTime())} ago, in ${d.path}; deleted ${time(new Date(d.modifiedAt.getTime() + UNFINISHED_MAX_AGE_MS))})`,
    )
    .join('; ');
  const [a, is, it] = stray.length === 1 ? ['A backup directory has', 'it is', 'it'] : [`${stray.length} backup directories have`, 'they are', 'them'];
  return `\n:warning: ${a} no manifest, so ${is} not a finished backup and not listed: ${named}${stray.length > 5 ? `; and ${stray.length - 5} more` : ''}. A backup that was interrupted, or a finished one whose manifest.json was lost: retention deletes ${it} 24 h after the last write; copy out what you want to keep before then (README "Disaster recovery" restores such files by hand).`;
}

function describeJob(job: Job<BackupJobData>): string {
  const who = job.data.requestedBy.userId ? `<@${job.data.requestedBy.userId}>` : job.data.requestedBy.source;
  const since = job.processedOn ?? job.timestamp;
  const d = job.data;
  const kind = d.schedule ? `scheduled by \`${d.schedule.id}\`` : d.label ? `${d.kind} ${escapeMrkdwn(d.label)}` : d.kind;
  return `\`${job.id}\` · ${d.target} · ${kind} · by ${who} · since ${formatTime(new Date(since))}`;
}

export async function formatQueueStatus(queue: Queue<BackupJobData>): Promise<string> {
  const [active, queued, delayed, failed, completed] = await Promise.all([
    queue.getJobs(['active'], 0, 19),
    queue.getJobs(['waiting', 'prioritized'], 0, 19),
    queue.getJobs(['delayed'], 0, 19),
    queue.getJobs(['failed'], 0, 4),
    queue.getJobs(['completed'], 0, 19),
  ]);
  // A failure a later backup of its target made good is said so (QA: listed as if still the state of things).
  const since = (j: Job<BackupJobData>) => {
    const later = completed.find((c) => c.data.target === j.data.target && (c.finishedOn ?? 0) > (j.finishedOn ?? 0));
    return later ? `; a backup of ${j.data.target} succeeded since (\`${later.id}\`, ${formatTime(new Date(later.finishedOn ?? 0))})` : '';
  };
  // Every job scheduler keeps its next job delayed: those are listed with the schedules, not as waiting work.
  const waiting = [...queued, ...delayed.filter((j) => !j.repeatJobKey)];
  const section = (title: string, jobs: Job<BackupJobData>[], extra?: (j: Job<BackupJobData>) => string) =>
    `*${title}* (${jobs.length})${jobs.length ? `\n${jobs.map((j) => `• ${describeJob(j)}${extra ? extra(j) : ''}`).join('\n')}` : ''}`;
  return [section('Running', active), section('Waiting', waiting), section('Recently failed', failed, (j) => ` — ${failureText(j)}${since(j)}`)].join('\n');
}

/** BullMQ's own words for a job whose worker died ("job stalled more than allowable limit") said as the channel says it. */
function failureText(job: Job<BackupJobData>): string {
  if (job.deferredFailure || /stalled more than allowable limit/.test(job.failedReason ?? '')) {
    return 'the worker running it stopped before it finished (its process crashed, was killed or lost Redis)';
  }
  return job.failedReason || 'unknown reason';
}
