import { BACKUP_DISK_FULL } from '../errors.ts';
import { formatBytes, formatTime } from '../format.ts';
import { type Manifest, totalBytes } from '../storage/index.ts';
import type { BackupRunSummary, ConditionResult, HealthInput, HealthThresholds } from './types.ts';

/**
 * Room the next backup is given beyond the size of the newest: a database grows, and a backup is written whole (as
 * `.partial` files) before retention may delete an old one, so the disk must hold it beside everything kept.
 */
export const NEXT_BACKUP_HEADROOM = 1.25;

/** The largest thing the next run writes to the backup disk: the newest backup, or the newest base backup if larger. */
interface Newest {
  what: string;
  bytes: number;
}

function newestWrite(newestFirst: Manifest[], base: { id: string; bytes?: number | undefined } | null | undefined): Newest | null {
  const logical = newestFirst[0];
  const candidates: Newest[] = [];
  if (logical) candidates.push({ what: `the newest backup (${logical.backupId})`, bytes: totalBytes(logical) });
  if (base?.bytes !== undefined) candidates.push({ what: `the newest base backup (${base.id})`, bytes: base.bytes });
  return candidates.reduce<Newest | null>((a, b) => (!a || b.bytes > a.bytes ? b : a), null);
}

/** The last backup run failed on a full disk, and no backup has succeeded since (a newer finished backup clears it). */
function ranOutOfSpace(run: BackupRunSummary | null, newestFirst: Manifest[]): BackupRunSummary | null {
  if (!run || run.ok || !run.reason?.startsWith(BACKUP_DISK_FULL)) return null;
  const newest = newestFirst[0];
  return newest && Date.parse(newest.finishedAt) >= run.at.getTime() ? null : run;
}

/**
 * The backup disk: under the free-space limit, too little room for the next backup (the newest's size plus
 * NEXT_BACKUP_HEADROOM), or the last backup ran out of space and none has succeeded since. Right after a backup
 * failed on a full disk its `.partial` files are gone and the disk looks roomy again; without the last two rules
 * it would read "has room" until the next backup fails the same way.
 */
export function diskCondition(
  target: string,
  disk: HealthInput['disk'],
  t: HealthThresholds,
  newestFirst: Manifest[] = [],
  lastRun: BackupRunSummary | null = null,
  base?: { id: string; bytes?: number | undefined } | null,
): ConditionResult {
  const c = { condition: 'disk', severity: 'warning' } as const;
  const full = ranOutOfSpace(lastRun, newestFirst);
  const fullSaid = full ? `the last backup ran out of space at ${formatTime(full.at)} and none has succeeded since` : null;
  // No figure is not a failure: local storage reports one, remote storage may not have one at all.
  if (!disk || disk.totalBytes <= 0) {
    if (fullSaid) return { ...c, status: 'failing', summary: `Backup disk of ${target}: ${fullSaid}`, evidence: `${fullSaid}; free space unknown` };
    return { ...c, status: 'ok', unjudged: true, summary: `Backup disk of ${target}: free space unknown`, evidence: 'unknown' };
  }
  const ratio = disk.freeBytes / disk.totalBytes;
  const pct = (r: number) => `${Math.round(r * 100)} %`;
  const free = `${pct(ratio)} free (${formatBytes(disk.freeBytes)} of ${formatBytes(disk.totalBytes)}), limit ${pct(t.diskFreeMinRatio)}`;
  const next = newestWrite(newestFirst, base);
  const need = next ? Math.ceil(next.bytes * NEXT_BACKUP_HEADROOM) : null;
  const short = need !== null && disk.freeBytes < need;
  const room =
    next && need !== null
      ? `the next backup needs about ${formatBytes(need)} (${next.what} took ${formatBytes(next.bytes)}, plus ${pct(NEXT_BACKUP_HEADROOM - 1)})`
      : null;
  const evidence = [free, room, fullSaid].filter(Boolean).join('; ');
  const problems = [
    ratio < t.diskFreeMinRatio ? `is nearly full: ${free}` : null,
    short ? `has too little room for the next backup: ${formatBytes(disk.freeBytes)} free, ${room}` : null,
    fullSaid ? `is short of space: ${fullSaid}` : null,
  ].filter((p): p is string => p !== null);
  if (problems.length === 0) return { ...c, status: 'ok', summary: `Backup disk of ${target} has room: ${evidence}`, evidence, value: ratio };
  const summary = `Backup disk of ${target} ${problems.join('; and ')}`;
  return { ...c, status: 'failing', summary, evidence, value: ratio };
}
