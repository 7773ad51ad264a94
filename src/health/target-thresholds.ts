import type { Config } from '../config.ts';
import { nextRuns } from '../schedules/index.ts';
import type { TargetPolicy } from '../schedules/index.ts';
import { DEFAULT_THRESHOLDS, type HealthThresholds } from './types.ts';

/**
 * "Backup too old" follows each target's own schedule. The bot-wide 25 h suits a daily backup; a staging target
 * backed up weekly (its default policy) would be critical six days out of seven and page for nothing, and the daily
 * checklist would never tick it. So, unless the config file sets `staleHours` or `staleHoursByClass` itself, a
 * target's limit is the longest wait between two of its scheduled backups plus an hour, never under the default.
 */

const HOUR_MS = 3600_000;
/** Runs looked at per schedule: enough for a weekly one to show its gap, and a DST change within ten weeks. */
const RUNS = 10;

/**
 * The longest wait between two scheduled backups of a target, in hours; null when it has no backup schedule. Looked
 * at from a week and a day before `from` too: the wait `from` is in counts (QA: a weekly target in the week its zone
 * falls back waits 169 h, and from after its run was due, the runs ahead showed 168 h: it paged critical at its run).
 */
export function longestScheduledGapHours(policy: Pick<TargetPolicy, 'backups'>, tz: string, from: Date): number | null {
  const ahead = gapsFrom(policy, tz, from);
  const around = gapsFrom(policy, tz, new Date(from.getTime() - 8 * 24 * HOUR_MS));
  return ahead === null || around === null ? (ahead ?? around) : Math.max(ahead, around);
}

function gapsFrom(policy: Pick<TargetPolicy, 'backups'>, tz: string, from: Date): number | null {
  const perSchedule = policy.backups.map((b) => nextRuns({ pattern: b.cron, tz }, from, RUNS)).filter((runs) => runs.length > 1);
  if (perSchedule.length === 0) return null;
  // Merged, up to the first schedule's last run: past it, that schedule's runs are no longer in the list.
  const horizon = Math.min(...perSchedule.map((runs) => runs.at(-1)?.getTime() ?? Number.POSITIVE_INFINITY));
  const times = [...new Set(perSchedule.flat().map((d) => d.getTime()))].filter((t) => t <= horizon).sort((a, b) => a - b);
  let longest = 0;
  for (let i = 1; i < times.length; i++) longest = Math.max(longest, (times[i] ?? 0) - (times[i - 1] ?? 0));
  return longest / HOUR_MS;
}

/** The thresholds to judge one target by: the config's, with a stale limit from the target's schedule. */
export function targetThresholds(
  config: Pick<Config, 'targets' | 'timezone' | 'health'>,
  now: () => Date = () => new Date(),
): (target: string) => Partial<HealthThresholds> {
  const base = config.health.thresholds ?? {};
  const cache = new Map<string, Partial<HealthThresholds>>();
  return (target) => {
    if (base.staleHours !== undefined || base.staleHoursByClass !== undefined) return base;
    let found = cache.get(target);
    if (!found) {
      const policy = config.targets.find((t) => t.name === target)?.policy;
      const gap = policy ? longestScheduledGapHours(policy, config.timezone, now()) : null;
      found = gap === null ? base : { ...base, staleHours: Math.max(DEFAULT_THRESHOLDS.staleHours, Math.ceil(gap) + 1) };
      cache.set(target, found);
    }
    return found;
  };
}

/**
 * When a target never backed up is due its first backup, counted from `since` (when the bot first watched it): the
 * first run of any of its backup schedules after then. A target without a schedule is given its stale limit.
 */
export function firstBackupDue(config: Pick<Config, 'targets' | 'timezone' | 'health'>): (target: string, since: Date) => Date {
  const thresholdsFor = targetThresholds(config);
  return (target, since) => {
    const policy = config.targets.find((t) => t.name === target)?.policy;
    const firsts = (policy?.backups ?? []).flatMap((b) => nextRuns({ pattern: b.cron, tz: config.timezone }, since, 1)).map((d) => d.getTime());
    if (firsts.length > 0) return new Date(Math.min(...firsts));
    return new Date(since.getTime() + (thresholdsFor(target).staleHours ?? DEFAULT_THRESHOLDS.staleHours) * HOUR_MS);
  };
}
