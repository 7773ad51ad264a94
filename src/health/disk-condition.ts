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
export interface Newest {
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

/** What the disk condition needs of one target: the largest thing its next run writes, and a run that ran out of space. */
export interface TargetDiskNeed {
  target: string;
  next: Newest | null;
  ranOut: BackupRunSummary | null;
}

export function targetDiskNeed(
  target: string,
  newestFirst: Manifest[],
  lastRun: BackupRunSummary | null,
  base?: { id: string; bytes?: number | undefined } | null,
): TargetDiskNeed {
  return { target, next: newestWrite(newestFirst, base), ranOut: ranOutOfSpace(lastRun, newestFirst) };
}

/** A HealthInput's need, for the storage-wide condition (workers/target-health.ts). */
export function inputDiskNeed(input: HealthInput): TargetDiskNeed {
  const newestFirst = [...input.backups].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt));
  return targetDiskNeed(input.target, newestFirst, input.lastBackupRun, input.baseBackup?.newest);
}

const pct = (r: number) => `${Math.round(r * 100)} %`;
const need = (n: TargetDiskNeed) => (n.next ? Math.ceil(n.next.bytes * NEXT_BACKUP_HEADROOM) : null);
const freeSaid = (disk: { totalBytes: number; freeBytes: number }, t: HealthThresholds) =>
  `${pct(disk.freeBytes / disk.totalBytes)} free (${formatBytes(disk.freeBytes)} of ${formatBytes(disk.totalBytes)}), limit ${pct(t.diskFreeMinRatio)}`;
const ranOutSaid = (run: BackupRunSummary) => `the last backup ran out of space at ${formatTime(run.at)} and none has succeeded since`;

/**
 * The backup disk as one target sees it: under the free-space limit, too little room for its next backup (the
 * newest's size plus NEXT_BACKUP_HEADROOM), or its last backup ran out of space and none has succeeded since. Right
 * after a backup failed on a full disk its `.partial` files are gone and the disk looks roomy again; without the last
 * two rules it would read "has room" until the next backup fails the same way.
 *
 * Failing, it is quiet: every target writes to the same disk, and a disk filling up is one event, posted and paged
 * once by the storage-wide condition (backupDiskCondition) however many targets it fails. This one says it where a
 * target is looked at (/backup health, the check CLI, the metrics).
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
  const n = targetDiskNeed(target, newestFirst, lastRun, base);
  const fullSaid = n.ranOut ? ranOutSaid(n.ranOut) : null;
  // No figure is not a failure: local storage reports one, remote storage may not have one at all.
  if (!disk || disk.totalBytes <= 0) {
    if (fullSaid)
      return { ...c, status: 'failing', quiet: true, summary: `Backup disk of ${target}: ${fullSaid}`, evidence: `${fullSaid}; free space unknown` };
    return { ...c, status: 'ok', unjudged: true, summary: `Backup disk of ${target}: free space unknown`, evidence: 'unknown' };
  }
  const ratio = disk.freeBytes / disk.totalBytes;
  const free = freeSaid(disk, t);
  const bytes = need(n);
  const short = bytes !== null && disk.freeBytes < bytes;
  const room =
    n.next && bytes !== null
      ? `the next backup needs about ${formatBytes(bytes)} (${n.next.what} took ${formatBytes(n.next.bytes)}, plus ${pct(NEXT_BACKUP_HEADROOM - 1)})`
      : null;
  const evidence = [free, room, fullSaid].filter(Boolean).join('; ');
  const problems = [
    ratio < t.diskFreeMinRatio ? `is nearly full: ${free}` : null,
    short ? `has too little room for the next backup: ${formatBytes(disk.freeBytes)} free, ${room}` : null,
    fullSaid ? `is short of space: ${fullSaid}` : null,
  ].filter((p): p is string => p !== null);
  if (problems.length === 0) return { ...c, status: 'ok', summary: `Backup disk of ${target} has room: ${evidence}`, evidence, value: ratio };
  const summary = `Backup disk of ${target} ${problems.join('; and ')}`;
  return { ...c, status: 'failing', quiet: true, summary, evidence, value: ratio };
}

/** "shop, crm and 3 more": the first few names, the rest counted. */
function someOf(names: string[], shown = 3): string {
  if (names.length <= shown) return names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : (names[0] ?? '');
  return `${names.slice(0, shown).join(', ')} and ${names.length - shown} more`;
}

/**
 * The disk every target's backups are written to (`where`: the storage, `local:/var/backups/pgbb`), judged once for
 * all of them by the same rules as diskCondition, target by target, from each target's need as its last check left
 * it in Redis (workers/disk-health.ts) and the disk's figure now: it fails when some target's disk condition would,
 * or when every target's next backup together would not fit (the one rule a target alone cannot judge; its line in
 * `/backup health` is the disk's own), and posts and pages once (one dedup key per storage) where each target used to
 * page on its own, 20 pages for one full disk with 20 targets. One episode while it fails: a disk's free space moves with every backup and every
 * retention run, and targets crossing their room one by one would post each time (second reader); `/backup health`
 * shows each target's state as it is.
 */
export function backupDiskCondition(
  where: string,
  disk: { totalBytes: number; freeBytes: number } | null,
  t: HealthThresholds,
  needs: readonly TargetDiskNeed[],
  /** Configured targets with no need remembered yet (not checked since they were added). */
  unchecked = 0,
): ConditionResult {
  const c = { condition: 'disk', severity: 'warning' } as const;
  const ranOut = needs.filter((n) => n.ranOut).sort((a, b) => (b.ranOut?.at.getTime() ?? 0) - (a.ranOut?.at.getTime() ?? 0));
  const latest = ranOut[0]?.ranOut;
  const fullSaid = latest
    ? ranOut.length === 1
      ? `the last backup of ${ranOut[0]?.target} ran out of space at ${formatTime(latest.at)} and none has succeeded since`
      : `the last backups of ${someOf(ranOut.map((n) => n.target))} ran out of space (the latest at ${formatTime(latest.at)}) and none has succeeded since`
    : null;
  const n = needs.length + unchecked;
  const targets = `${n} target${n === 1 ? '' : 's'} write${n === 1 ? 's' : ''} to it${unchecked > 0 ? ` (${unchecked} not checked yet)` : ''}`;
  // What clears it, said with it (QA: a page that had freed space stayed open, and nothing said why): room, and a
  // backup of each target whose last one ran out of space, as that rule holds until one succeeds.
  const clear = (noRoom: boolean) =>
    [
      noRoom ? 'free space, or delete old backups (`pg-backup-bot retention --dry-run` lists what retention deletes next)' : null,
      ranOut.length > 0 ? `${noRoom ? 'then ' : ''}back up ${someOf(ranOut.map((x) => x.target))} again (\`/backup now <target>\`)` : null,
    ]
      .filter(Boolean)
      .join(', ');
  if (!disk || disk.totalBytes <= 0) {
    if (!fullSaid)
      return { ...c, status: 'ok', unjudged: true, summary: `Backup disk ${where}: free space unknown`, evidence: `free space unknown; ${targets}` };
    const todo = `to clear it: ${clear(false)}`;
    return { ...c, status: 'failing', summary: `Backup disk ${where}: ${fullSaid}; ${todo}`, evidence: `${fullSaid}; free space unknown; ${todo}` };
  }
  const ratio = disk.freeBytes / disk.totalBytes;
  const free = freeSaid(disk, t);
  // Each target's next backup with its room, largest first: the one that needs the most is the one to make room for.
  const sized = needs
    .map((x) => ({ n: x, bytes: need(x) }))
    .filter((x): x is { n: TargetDiskNeed; bytes: number } => x.bytes !== null)
    .sort((a, b) => b.bytes - a.bytes);
  const short = sized.filter((x) => disk.freeBytes < x.bytes);
  const first = short[0];
  const room = !first
    ? null
    : short.length === 1
      ? `the next backup of ${first.n.target} needs about ${formatBytes(first.bytes)} (${first.n.next?.what} took ${formatBytes(first.n.next?.bytes ?? 0)}, plus ${pct(NEXT_BACKUP_HEADROOM - 1)})`
      : `the next backups of ${someOf(short.map((x) => `${x.n.target} (about ${formatBytes(x.bytes)})`))} each need more than that`;
  // Every target's next backup at once (the nightly round, before retention frees anything): each may fit alone while
  // all of them do not. Said only when no target is short alone, which says more.
  const total = sized.reduce((sum, x) => sum + x.bytes, 0);
  const all =
    !room && sized.length > 1 && disk.freeBytes < total
      ? `the next backups of all ${sized.length} targets need about ${formatBytes(total)} in all (the largest: ${someOf(sized.map((x) => `${x.n.target} ${formatBytes(x.bytes)}`))})`
      : null;
  const evidence = [free, room ?? all, fullSaid].filter(Boolean).join('; ');
  const problems = [
    ratio < t.diskFreeMinRatio ? `is nearly full: ${free}` : null,
    room ? `has too little room: ${formatBytes(disk.freeBytes)} free, ${room}` : null,
    all ? `has too little room for every target's next backup: ${formatBytes(disk.freeBytes)} free, ${all}` : null,
    fullSaid ? `is short of space: ${fullSaid}` : null,
  ].filter((p): p is string => p !== null);
  if (problems.length === 0)
    return { ...c, status: 'ok', summary: `Backup disk ${where} has room: ${evidence}`, evidence: `${evidence}; ${targets}`, value: ratio };
  const todo = `to clear it: ${clear(ratio < t.diskFreeMinRatio || room !== null || all !== null)}`;
  return {
    ...c,
    status: 'failing',
    summary: `Backup disk ${where} ${problems.join('; and ')}; ${todo}`,
    evidence: `${evidence}; ${targets}; ${todo}`,
    value: ratio,
  };
}

/** The disk as a health subject: the storage's name (`local:/var/backups/pgbb`); a very long path keeps its end, as the dedup key holds it (PagerDuty takes 255 characters). */
export function diskSubject(storage: { describe(): string }): string {
  const described = storage.describe();
  return described.length > 200 ? `…${described.slice(-199)}` : described;
}
