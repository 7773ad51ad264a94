import { type ConditionResult, diskSubject } from '../health/index.ts';
import { formatTime } from '../format.ts';
import type { Logger } from '../logger.ts';
import { report, type TargetHealthDeps } from './health-report.ts';
import { retireOthers } from './retired-subjects.ts';

/** How long a target's checks may fail before it pages: one S3 blip or a restarting Redis replica is not a page. */
export const UNCHECKED_PAGES_AFTER_MS = 10 * 60_000;

/**
 * Targets whose health cannot be checked, paged once for the storage they share (`pg-backup-bot/<storage>/unchecked`),
 * not once per target: a check fails when the storage cannot be read, and an S3 outage under 20 targets was 20 pages
 * and 20 posts for one cause (an earlier note's "page storm"). Each target keeps its own `unchecked` failure, quiet
 * (shown in `/backup health`, never paged: target-health.ts); this condition reads them as stored in Redis, as every
 * worker host does alike, and fails once one of them has failed for UNCHECKED_PAGES_AFTER_MS (quiet before that).
 * One episode while it fails, timed from its own start: targets joining or leaving it (an outage that fails another
 * subset of targets each run) change its evidence, never its page, and once paged it stays paged until every target
 * is checked again (second reader: the clock followed the longest-failing target, so the page resolved mid-outage).
 * So a storage that fails some target at every health run for 10 minutes pages, whichever target it is: one run's
 * blip does not (the next run that checks every target ends the episode).
 * A storage no worker judges any more (another bucket, BACKUP_DIR moved) has its failure cleared after
 * RETIRED_AFTER_MS, as the disk's.
 */
export async function judgeUnchecked(deps: TargetHealthDeps, at: Date, log: Logger): Promise<ConditionResult> {
  const where = diskSubject(deps.storage);
  const stored = await Promise.all(deps.config.targets.map(async (t) => ({ target: t.name, u: (await deps.state.read(t.name)).unchecked })));
  const failing = stored
    .filter((s) => s.u?.status === 'failing')
    .map((s) => ({ target: s.target, since: Date.parse(s.u?.since ?? ''), evidence: s.u?.evidence ?? '' }))
    .sort((a, b) => a.since - b.since || (a.target < b.target ? -1 : 1));
  const own = (await deps.state.read(where)).unchecked;
  const result = uncheckedCondition(where, failing, deps.config.targets.length, at, own?.status === 'failing' ? own : undefined);
  for (const a of await deps.state.apply(where, [result], at)) await report(deps, where, a, log);
  await retireOthers(deps, 'unchecked', where, at, log, (subject, since) => ({
    condition: 'unchecked',
    severity: 'error',
    status: 'ok',
    summary: `${subject}: not judged since ${formatTime(since)}`,
    evidence: `no worker has judged its targets since ${formatTime(since)}: backups are written to ${where} now`,
  }));
  return result;
}

/** After a job of one target: judged again only while it fails as remembered, so its page resolves soon after. */
export async function judgeUncheckedAfter(deps: TargetHealthDeps, at: Date, log: Logger): Promise<ConditionResult | null> {
  const failing = (await deps.state.read(diskSubject(deps.storage))).unchecked?.status === 'failing';
  return failing ? judgeUnchecked(deps, at, log) : null;
}

/** The storage-wide verdict from each target's stored `unchecked` (longest failing first). */
export function uncheckedCondition(
  where: string,
  failing: ReadonlyArray<{ target: string; since: number; evidence: string }>,
  configured: number,
  at: Date,
  /** This condition's own failure as stored, while it fails: its start, and whether it pages already. */
  own?: { since: string; quiet?: boolean | undefined },
): ConditionResult {
  const c = { condition: 'unchecked', severity: 'error' } as const;
  const first = failing[0];
  if (!first) return { ...c, status: 'ok', summary: `${where}: every target's health is checked`, evidence: `all ${configured} checked` };
  const n = failing.length;
  const ownSince = own ? Date.parse(own.since) : Number.NaN;
  const firstSince = Number.isNaN(first.since) ? at.getTime() : first.since;
  const since = Math.min(firstSince, Number.isNaN(ownSince) ? at.getTime() : ownSince);
  const names = failing.map((f) => f.target);
  const shown = names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} and ${names.length - 4} more`;
  const whose = n === 1 ? `${first.target}'s health` : `the health of ${n} of ${configured} targets (${shown})`;
  // Reasons that differ only by the target they name (its directory) are one reason (QA: "2 other reasons" of one).
  const others = new Set(failing.map((f) => f.evidence.split(f.target).join('<target>'))).size - 1;
  // Each start said for what it is (second reader: the episode's start was given as the named target's).
  const starts =
    since < firstSince
      ? `${first.target} since ${formatTime(new Date(firstSince))}, this storage's checks failing since ${formatTime(new Date(since))}`
      : `since ${formatTime(new Date(since))}`;
  const evidence = `${whose} cannot be checked (${starts}): ${first.evidence}${others > 0 ? ` (${others} other reason${others === 1 ? '' : 's'}: \`/backup health\` shows each target's)` : ''}`;
  const loud = at.getTime() - since >= UNCHECKED_PAGES_AFTER_MS || (own !== undefined && !own.quiet);
  return {
    ...c,
    status: 'failing',
    summary: `${where}: ${n === 1 ? `${first.target}'s health cannot be checked` : `the health of ${n} targets cannot be checked`}`,
    evidence,
    ...(loud ? {} : { quiet: true as const }),
  };
}
