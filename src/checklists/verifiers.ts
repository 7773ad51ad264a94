import type { Config, TargetConfig } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { checkTarget, healthSources } from '../health/index.ts';
import { longestScheduledGapHours, resolveThresholds, targetThresholds } from '../health/index.ts';
import type { RunLog } from '../health/index.ts';
import type { ConditionResult } from '../health/index.ts';
import type { Logger } from '../logger.ts';
import type { Verification, VerifierId } from '../notifications/checklists.ts';
import { formatBytes, formatDuration } from '../format.ts';
import { listStoredBackup } from '../postgres/restore/index.ts';
import { formatInZone } from '../schedules/index.ts';
import type { Manifest } from '../storage/index.ts';
import { failedRestoreTestIds, planRetention } from '../storage/index.ts';
import type { Storage } from '../storage/index.ts';
import { clock, periodStart, restoreTestPeriod, samePeriod, sizeAgainstWeek } from './evidence.ts';
import type { RetentionRuns } from './retention-runs.ts';

/**
 * The checks behind the scheduled checklists' bot items. Each looks at every target and says, per target, what it
 * saw; an item passes only when every target passes. A check that cannot run says why and fails: a box the bot
 * ticks must mean it looked. Missing from the result: not checkable here (free space on S3), left to people.
 */

export interface VerifierContext {
  config: Config;
  storage: Storage;
  runs: RunLog | null;
  /** The retention worker's finished runs; null: judged from storage alone. */
  retention: RetentionRuns | null;
  log: Logger;
  now: Date;
  signal?: AbortSignal;
}

type Result = Verification;
const HOUR_MS = 3600 * 1000;

async function eachTarget(ctx: VerifierContext, check: (t: TargetConfig) => Promise<Result>): Promise<Result> {
  const targets = ctx.config.targets;
  if (targets.length === 0) return { ok: false, evidence: 'no backup target is configured' };
  const results = await Promise.all(
    targets.map((t) =>
      check(t).catch((err: unknown): Result => {
        ctx.log.warn({ err, target: t.name }, 'checklist verifier failed');
        return { ok: false, evidence: `could not check: ${toUserMessage(err)}` };
      }),
    ),
  );
  const named = targets.length > 1;
  return { ok: results.every((r) => r.ok), evidence: results.map((r, i) => (named ? `${targets[i]?.name}: ${r.evidence}` : r.evidence)).join('; ') };
}

/** A target's backups (newest first) and its health conditions. */
interface TargetHealth {
  backups: Manifest[];
  results: ConditionResult[];
}
type HealthOf = (target: string) => Promise<TargetHealth>;

/** The health conditions of one target, computed once per checklist. */
function healthOf(ctx: VerifierContext): HealthOf {
  const cache = new Map<string, Promise<TargetHealth>>();
  return (target: string) => {
    let hit = cache.get(target);
    if (!hit) {
      const sources = healthSources(ctx.config, { storage: ctx.storage, runs: ctx.runs, backupQueue: null });
      hit = checkTarget(sources, target, ctx.now).then(({ input, results }) => ({
        backups: [...input.backups].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt)),
        results,
      }));
      cache.set(target, hit);
    }
    return hit;
  };
}

const condition = (results: ConditionResult[], name: ConditionResult['condition']) => results.find((r) => r.condition === name);

/** Backups past their deadline that retention should have deleted by `asOf` (the newest good one is always kept). */
async function pastDeadline(ctx: VerifierContext, asOf: Date, target?: string): Promise<string[]> {
  const [backups, records] = await Promise.all([ctx.storage.list(target), ctx.storage.listRecords('restore-test', target)]);
  const plan = planRetention({
    ...{ backups, now: asOf, runningRestoreTests: new Set<string>(), unfinished: [], failedRestoreTests: failedRestoreTestIds(records) },
    // Deadlines in the configured zone, as every other time of the checklist (QA: UTC+00:00 beside +01:00).
    timezone: ctx.config.timezone,
  });
  return plan.delete.map((d) => `${d.backupId} (${d.reason})`);
}

const list = (items: string[], max = 3) => `${items.slice(0, max).join(', ')}${items.length > max ? ` and ${items.length - max} more` : ''}`;

/** The checks by id: the per-target ones run on every target (eachTarget), the others once. */
export function verifiers(ctx: VerifierContext): Partial<Record<VerifierId, () => Promise<Result | undefined>>> {
  const health = healthOf(ctx);
  return {
    'backup-ran': () => eachTarget(ctx, (t) => backupRan(ctx, health, t)),
    'size-normal': () => eachTarget(ctx, (t) => sizeNormal(health, t)),
    'disk-space': () => diskSpace(ctx, health),
    'retention-applied': () => retentionApplied(ctx),
    'newest-lists': () => eachTarget(ctx, (t) => newestLists(ctx, t)),
    'restore-test-documented': () => eachTarget(ctx, (t) => restoreTestDocumented(ctx, t)),
    'retention-compliant': () => eachTarget(ctx, (t) => retentionCompliant(ctx, t)),
  };
}

/**
 * "Last night's backups ran": the schedule's backups, not a pre-migration or manual one somebody took during
 * the day (which keeps the stale condition quiet, and would have ticked this box over a missed night).
 */
async function backupRan(ctx: VerifierContext, health: HealthOf, t: TargetConfig): Promise<Result> {
  const tz = ctx.config.timezone;
  const { backups, results } = await health(t.name);
  // A failed run is said whatever else is: it is what the on-call engineer must look at first.
  const run = ctx.runs ? await ctx.runs.last(t.name) : null;
  const failed = run && !run.ok ? `last run FAILED at ${clock(run.at, ctx.now, tz)}: ${run.reason ?? 'no reason recorded'}` : null;
  if (backups.length === 0) return { ok: false, evidence: `no backup of ${t.name} yet${failed ? `; ${failed}` : ''}` };
  // The night's own schedule where the target has one (class daily): QA, the 02:00 backups stopped while the 6-hourly
  // ones went on, and a midday backup ticked this box every morning while the 30-day history wore away.
  const nightly = t.policy.backups.find((b) => b.retentionClass === 'daily');
  const which = nightly ? 'daily' : 'scheduled';
  const newest = backups.find((b) => b.kind === 'scheduled' && (!nightly || b.retentionClass === 'daily'));
  if (!newest) {
    const also = failed && run && run.at.getTime() > Date.parse(backups[0]?.startedAt ?? '') ? `; ${failed}` : '';
    return { ok: false, evidence: `no ${which} backup of ${t.name} yet (newest: ${backups[0]?.kind} ${backups[0]?.backupId})${also}` };
  }
  const shown = `${clock(newest.startedAt, ctx.now, tz)} backup ${newest.backupId}: ${sizeAgainstWeek(newest, backups)}`;
  const stale = condition(results, 'stale');
  if (stale?.status === 'failing') return { ok: false, evidence: `${stale.evidence}; newest: ${shown}` };
  // The config's own limit where it sets one (a slow host's `staleHours: 30`: second reader); else the schedule's.
  const set = ctx.config.health.thresholds;
  const nightlyGap = nightly ? longestScheduledGapHours({ backups: [nightly] }, tz, ctx.now) : null;
  const configured = nightly ? (set?.staleHoursByClass?.daily ?? set?.staleHours) : undefined;
  const limitHours = configured ?? (nightlyGap !== null ? Math.ceil(nightlyGap) + 1 : (targetThresholds(ctx.config, () => ctx.now)(t.name).staleHours ?? 25));
  const ageMs = ctx.now.getTime() - Date.parse(newest.startedAt);
  if (ageMs > limitHours * 3_600_000) {
    const since = backups[0] && backups[0] !== newest ? backups[0] : undefined;
    const other = since ? `; a ${since.kind === 'scheduled' ? `${since.retentionClass} ` : `${since.kind} `}backup since does not count` : '';
    return { ok: false, evidence: `the newest ${which} backup is ${formatDuration(ageMs)} old, over ${limitHours} h: ${shown}${other}` };
  }
  if (failed && run && run.at.getTime() > Date.parse(newest.startedAt)) return { ok: false, evidence: `${failed}; newest good: ${shown}` };
  return { ok: true, evidence: shown };
}

async function sizeNormal(health: HealthOf, t: TargetConfig): Promise<Result> {
  const size = condition((await health(t.name)).results, 'size');
  if (!size) return { ok: false, evidence: 'size not judged' };
  // "Cannot judge yet" is not "normal": the box stays open for a person to look.
  const judged = size.value !== undefined && !size.evidence.includes('not enough history');
  return { ok: judged && size.status === 'ok', evidence: size.evidence };
}

async function diskSpace(ctx: VerifierContext, health: HealthOf): Promise<Result | undefined> {
  if (!ctx.storage.freeSpace) return undefined;
  const disk = await ctx.storage.freeSpace();
  const min = resolveThresholds(ctx.config.health.thresholds).diskFreeMinRatio;
  const pct = (r: number) => `${Math.round(r * 100)} %`;
  if (disk.totalBytes <= 0) return { ok: false, evidence: 'free space unknown' };
  const ratio = disk.freeBytes / disk.totalBytes;
  const free = `${pct(ratio)} free (${formatBytes(disk.freeBytes)} of ${formatBytes(disk.totalBytes)}), limit ${pct(min)}`;
  if (ratio < min) return { ok: false, evidence: free };
  // Above the limit, the disk may still not hold the next backup, or a backup just ran out of space on it.
  const short = await Promise.all(ctx.config.targets.map(async (t) => condition((await health(t.name)).results, 'disk')));
  const said = short.filter((d) => d?.status === 'failing').map((d) => d?.summary.replace(/^Backup disk of /, ''));
  return said.length === 0 ? { ok: true, evidence: free } : { ok: false, evidence: `${free}; ${said.join('; ')}` };
}

async function retentionApplied(ctx: VerifierContext): Promise<Result> {
  const run = ctx.retention ? await ctx.retention.last(ctx.now) : null;
  // Retention runs daily: what expired more than a day ago should be gone, whatever is due since.
  const asOf = run?.ok ? new Date(Math.min(run.startedAt.getTime(), ctx.now.getTime())) : new Date(ctx.now.getTime() - 25 * HOUR_MS);
  const left = await pastDeadline(ctx, asOf);
  const leftText = left.length > 0 ? `; still there past their deadline: ${list(left)}` : '; nothing past its deadline is left';
  // The job records every run, a quiet one too: none in 8 days means retention is not running, and "applied"
  // would be a tick without anything behind it, however little has expired so far.
  if (!run) {
    // A bot watching for less than a day has had no retention run to record yet: that is no fault of the workers.
    const first = ctx.runs && ctx.config.targets[0] ? await ctx.runs.firstSeen(ctx.config.targets[0].name, ctx.now) : null;
    const young = first !== null && ctx.now.getTime() - first.getTime() < 25 * HOUR_MS;
    const why = !ctx.config.schedules.retention.enabled
      ? 'the retention job is turned off: `retention.enabled: false`'
      : young
        ? `the bot has watched since ${formatInZone(first, ctx.config.timezone)}, and its first daily run (at ${ctx.config.schedules.retention.at}) is still to come`
        : 'it is scheduled daily: are the workers running?';
    return { ok: false, evidence: `no retention run recorded in the last 8 days (${why})${leftText}` };
  }
  const when = formatInZone(run.finishedAt, ctx.config.timezone);
  if (!run.ok) return { ok: false, evidence: `last retention run (${when}) FAILED: ${run.problem}${leftText}` };
  return { ok: left.length === 0 && !run.dryRun, evidence: `last retention run ${when}: ${run.said}${leftText}` };
}

async function newestLists(ctx: VerifierContext, t: TargetConfig): Promise<Result> {
  const [newest] = await ctx.storage.list(t.name);
  if (!newest) return { ok: false, evidence: `no backup of ${t.name} yet` };
  const r = await listStoredBackup({
    manifest: newest,
    storage: ctx.storage,
    pgBinDir: ctx.config.pgBinDir,
    identityFile: ctx.config.encryption.identityFile,
    signal: ctx.signal,
    log: ctx.log,
  });
  const what = `${newest.backupId} (${clock(newest.startedAt, ctx.now, ctx.config.timezone)})`;
  return r.ok
    ? { ok: true, evidence: `${what}: pg_restore --list read ${r.tocEntries} TOC entries in ${formatDuration(r.ms)}` }
    : { ok: false, evidence: `${what}: ${r.problem ?? 'unreadable'}` };
}

async function restoreTestDocumented(ctx: VerifierContext, t: TargetConfig): Promise<Result> {
  const tz = ctx.config.timezone;
  const period = restoreTestPeriod(t);
  const records = (await ctx.storage.listRecords('restore-test', t.name)).filter((r) => samePeriod(new Date(r.startedAt), ctx.now, tz, period));
  const latest = records[0];
  if (!latest) return { ok: false, evidence: `no restore test recorded since ${periodStart(ctx.now, tz, period)}` };
  const what = `restore test of ${latest.backupId} on ${formatInZone(new Date(latest.startedAt), tz)}`;
  if (latest.passed !== true) return { ok: false, evidence: `${what} FAILED: ${latest.problems[0] ?? 'no problem recorded'}` };
  return { ok: true, evidence: `${what} passed, restore time (RTO) ${formatDuration(latest.restoreMs)}, record ${latest.id}` };
}

async function retentionCompliant(ctx: VerifierContext, t: TargetConfig): Promise<Result> {
  const [backups, left] = await Promise.all([ctx.storage.list(t.name), pastDeadline(ctx, new Date(ctx.now.getTime() - 25 * HOUR_MS), t.name)]);
  const count = (cls: string) => backups.filter((b) => b.retentionClass === cls).length;
  const classes = [...new Set(t.policy.backups.map((b) => b.retentionClass))];
  const missing = classes.filter((c) => count(c) === 0);
  const present = classes.filter((c) => count(c) > 0).map((c) => `${c} ×${count(c)}`);
  const parts = [left.length > 0 ? `past their deadline: ${list(left)}` : 'nothing past its deadline'];
  if (present.length > 0) parts.push(`present: ${present.join(', ')}`);
  if (missing.length > 0) parts.push(`no ${missing.length > 1 ? `${missing.slice(0, -1).join(', ')} or ${missing.at(-1)}` : missing[0]} backup stored yet`);
  return { ok: left.length === 0 && missing.length === 0, evidence: parts.join('; ') };
}

/** Runs the named checks, each on its own (one failing to run never hides the others' results). */
export async function runVerifiers(ids: readonly VerifierId[], ctx: VerifierContext): Promise<Partial<Record<VerifierId, Verification>>> {
  const all = verifiers(ctx);
  const out: Partial<Record<VerifierId, Verification>> = {};
  for (const id of ids) {
    const check = all[id];
    if (!check) continue;
    try {
      const r = await check();
      if (r) out[id] = r;
    } catch (err) {
      ctx.log.warn({ err, verifier: id }, 'checklist verifier failed');
      out[id] = { ok: false, evidence: `could not check: ${toUserMessage(err)}` };
    }
  }
  return out;
}
