import type { ScheduleConfig } from './config-schema.ts';
import type { ChecklistJobData, RetentionJobData, ScheduledBackupData, ScheduledBaseBackupData, ScheduledRestoreTestData } from './job-data.ts';
import type { TargetPolicy } from './policy.ts';
import { type RunRule, parseTimeOfDay } from './time.ts';

/**
 * Config → the BullMQ job schedulers that should exist. Pure: start-up upserts `upsert` and removes `remove`
 * (diffSchedulers) on each queue, so running it twice changes nothing and a schedule deleted from the file
 * disappears from Redis instead of running forever.
 */

/** Every scheduler id we create starts with this; ids without it (e.g. the health job's `health`) are never touched. */
export const SCHEDULER_PREFIX = 'pgbb:';

export type SchedulerQueue = 'backup' | 'restore-test' | 'retention' | 'checklist' | 'base-backup';

interface Base<Q extends SchedulerQueue, D> {
  /** Stable and unique across queues: `pgbb:backup:shop:daily`. BullMQ accepts `:` in scheduler ids. */
  id: string;
  queue: Q;
  /** 5-field cron, evaluated by BullMQ in `tz`. No `every`: BullMQ anchors it on the first upsert and ignores tz. */
  pattern: string;
  tz: string;
  /** Job name given to the scheduler's template. */
  name: string;
  data: D;
  /** The target a scheduler belongs to (null: one for the whole bot), and a label for `/backup status`. */
  target: string | null;
  label: string;
  /** The day rule the job re-checks at its scheduled time (shouldRunToday); nextRuns honours it too. */
  rule: RunRule | null;
}

export type PlannedScheduler =
  | Base<'backup', ScheduledBackupData>
  | Base<'restore-test', ScheduledRestoreTestData>
  | Base<'retention', RetentionJobData>
  | Base<'checklist', ChecklistJobData>
  | Base<'base-backup', ScheduledBaseBackupData>;

const DOW: Record<ScheduleConfig['reminders']['weekly']['day'], number> = {
  sunday: 0,
  monday: 1,
  tuesday: 2,
  wednesday: 3,
  thursday: 4,
  friday: 5,
  saturday: 6,
};

/** `HH:MM` + the day fields → a cron pattern. */
function at(hhmm: string, days: string): string {
  const { hour, minute } = parseTimeOfDay(hhmm);
  return `${minute} ${hour} ${days}`;
}

export function planSchedulers(config: Pick<ScheduleConfig, 'timezone' | 'retention' | 'reminders'>, targets: readonly TargetPolicy[]): PlannedScheduler[] {
  const tz = config.timezone;
  const out: PlannedScheduler[] = [];
  for (const t of targets) {
    for (const b of t.backups) {
      out.push({
        id: `${SCHEDULER_PREFIX}backup:${t.name}:${b.id}`,
        queue: 'backup',
        pattern: b.cron,
        tz,
        name: 'scheduled-backup',
        data: {
          target: t.name,
          kind: 'scheduled',
          label: null,
          requestedBy: { source: 'schedule', userName: `schedule ${b.id}` },
          schedule: { id: b.id, retentionClass: b.retentionClass, keepDays: b.keepDays },
        },
        target: t.name,
        label: `${b.id} backup (${b.retentionClass}, kept ${b.keepDays} days)`,
        rule: null,
      });
    }
    if (t.baseBackup) {
      // Point-in-time recovery replays WAL from a base backup: a newer one shortens the replay and lets old WAL go.
      out.push({
        id: `${SCHEDULER_PREFIX}base-backup:${t.name}`,
        queue: 'base-backup',
        pattern: t.baseBackup.cron,
        tz,
        name: 'scheduled-base-backup',
        data: { target: t.name, label: null, requestedBy: { source: 'schedule', userName: 'schedule base-backup' }, schedule: { id: 'base-backup' } },
        target: t.name,
        label: 'base backup (point-in-time recovery)',
        rule: null,
      });
    }
    if (t.restoreTest) {
      const quarterly = t.restoreTest.cadence === 'quarterly';
      // `6#1` is cron-parser's "first Saturday": BullMQ evaluates patterns with cron-parser, so it fires once a
      // month, exactly then. `0 3 1-7 * 6` would not: day-of-month and day-of-week are OR'ed.
      const rule: RunRule = quarterly ? 'first-saturday-of-quarter' : 'first-saturday';
      out.push({
        id: `${SCHEDULER_PREFIX}restore-test:${t.name}`,
        queue: 'restore-test',
        pattern: at(t.restoreTest.at, quarterly ? '* 1,4,7,10 6#1' : '* * 6#1'),
        tz,
        name: 'scheduled-restore-test',
        data: { target: t.name, requestedBy: { source: 'schedule', userName: 'schedule restore-test' }, schedule: { rule } },
        target: t.name,
        label: `restore test of the newest backup (${quarterly ? 'quarterly' : 'monthly'})`,
        rule,
      });
    }
  }
  if (config.retention.enabled) {
    const dryRun = config.retention.dryRun;
    out.push({
      id: `${SCHEDULER_PREFIX}retention`,
      queue: 'retention',
      pattern: at(config.retention.at, '* * *'),
      tz,
      name: 'retention',
      data: { dryRun },
      target: null,
      label: dryRun ? 'retention (dry run: reports, deletes nothing)' : 'retention (deletes expired backups)',
      rule: null,
    });
  }
  const r = config.reminders;
  const reminders: Array<[ChecklistJobData['kind'], boolean, string]> = [
    ['daily', r.daily.enabled, at(r.daily.at, '* * *')],
    ['weekly', r.weekly.enabled, at(r.weekly.at, `* * ${DOW[r.weekly.day]}`)],
    // Second Monday (days 8–14) always follows the first Saturday (days 1–7), whose restore test it asks about.
    ['monthly', r.monthly.enabled, at(r.monthly.at, '* * 1#2')],
  ];
  for (const [kind, enabled, pattern] of reminders) {
    if (!enabled) continue;
    out.push({
      id: `${SCHEDULER_PREFIX}checklist:${kind}`,
      queue: 'checklist',
      pattern,
      tz,
      name: 'checklist',
      data: { kind },
      target: null,
      label: `${kind} checklist`,
      rule: null,
    });
  }
  return out;
}

/**
 * What to upsert and what to remove on one queue, given the scheduler ids it holds now (`getJobSchedulers()`
 * keys). Upserting an unchanged scheduler is idempotent but not free: BullMQ replaces its pending job with one
 * computed from "now", which drops a run that came due while no worker was up; sync.ts skips unchanged ones.
 * Call it per queue with that queue's entries, so another queue's schedulers are never judged here.
 */
export function diffSchedulers<T extends { id: string }>(wanted: readonly T[], existingIds: readonly string[]): { upsert: T[]; remove: string[] } {
  const keep = new Set(wanted.map((w) => w.id));
  const remove = [...new Set(existingIds)].filter((id) => id.startsWith(SCHEDULER_PREFIX) && !keep.has(id)).sort();
  return { upsert: [...wanted], remove };
}

/** The arguments of `queue.upsertJobScheduler(id, repeat, template)` for one planned scheduler. */
export function upsertArgs(p: PlannedScheduler): [string, { pattern: string; tz: string }, { name: string; data: PlannedScheduler['data'] }] {
  return [p.id, { pattern: p.pattern, tz: p.tz }, { name: p.name, data: p.data }];
}
