import { describeCron, nextRuns } from './cron.ts';
import type { PlannedScheduler } from './plan.ts';
import { formatInZone } from './time.ts';

/**
 * `/backup status`: each target's schedules with their next run in the configured time zone — as BullMQ holds it
 * when Redis was read (`held`), so a schedule Redis lost shows as missing instead of as planned.
 */

export interface ScheduleStatusRow {
  id: string;
  target: string | null;
  label: string;
  /** How often, in words (`every day at 02:00`), or the pattern when there are none. */
  when: string;
  next: Date[];
  /** Whether Redis holds the scheduler (null: Redis was not read). */
  inRedis: boolean | null;
}

/** `held`: scheduler id → its next run (ms) as stored in Redis; without it the rows come from the plan alone. */
export function scheduleStatus(plan: readonly PlannedScheduler[], now: Date, count = 1, held?: ReadonlyMap<string, number | undefined>): ScheduleStatusRow[] {
  return plan.map((p) => {
    const inRedis = held ? held.has(p.id) : null;
    const stored = held?.get(p.id);
    // The day rule (first Saturday) is checked when the job runs, so BullMQ's next may be a run that skips itself.
    const next = stored !== undefined && p.rule === null ? [new Date(stored)] : nextRuns(p, now, count);
    return { id: p.id, target: p.target, label: p.label, when: describeCron(p.pattern), next, inRedis };
  });
}

/**
 * Plain mrkdwn lines grouped by target, bot-wide jobs last; times carry their UTC offset (DST-proof). Longer than
 * `limit` (a fleet's hundreds of schedules), a summary instead: how many, the soonest runs, and every schedule
 * Redis lacks, as many as fit.
 */
export function formatScheduleStatus(rows: readonly ScheduleStatusRow[], tz: string, limit = Number.POSITIVE_INFINITY): string {
  const full = fullScheduleStatus(rows, tz);
  return full.length <= limit ? full : scheduleSummary(rows, tz, limit);
}

function scheduleSummary(rows: readonly ScheduleStatusRow[], tz: string, limit: number): string {
  const targets = new Set(rows.map((r) => r.target).filter((t) => t !== null)).size;
  const missing = rows.filter((r) => r.inRedis === false);
  const line = (r: ScheduleStatusRow, verb: string) => {
    const next = r.next[0] ? formatInZone(r.next[0], tz) : 'no next run';
    return `• ${r.target ?? 'all targets'}: ${r.label} — ${verb} ${next}`;
  };
  const soonest = rows
    .filter((r) => r.inRedis !== false && r.next[0])
    .sort((a, b) => (a.next[0]?.getTime() ?? 0) - (b.next[0]?.getTime() ?? 0))
    .slice(0, 5);
  const parts = [
    `Schedules (times in ${tz}): ${rows.length} for ${targets} targets, ${missing.length === 0 ? 'all in Redis' : `:warning: *${missing.length} missing from Redis: they will not run* until a worker restores them`}.`,
    `Next:\n${soonest.map((r) => line(r, 'next')).join('\n')}`,
  ];
  let text = parts.join('\n');
  for (const [i, r] of missing.entries()) {
    const add = `\n${line(r, 'not in Redis; planned next')}`;
    if (text.length + add.length > limit - 80) return `${text}\n_…and ${missing.length - i} more missing from Redis._`;
    text += add;
  }
  return text;
}

function fullScheduleStatus(rows: readonly ScheduleStatusRow[], tz: string): string {
  const groups = new Map<string, ScheduleStatusRow[]>();
  for (const row of rows) {
    const key = row.target ?? '';
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const keys = [...groups.keys()].filter((k) => k !== '').sort();
  if (groups.has('')) keys.push('');
  const sections = keys.map((key) => {
    const lines = (groups.get(key) ?? []).map((r) => {
      const next = r.next.length > 0 ? r.next.map((d) => formatInZone(d, tz)).join(', ') : 'no next run';
      if (r.inRedis === false) return `• ${r.label}: ${r.when} — :warning: *not in Redis: it will not run* until a worker restores it (planned next ${next})`;
      return `• ${r.label}: ${r.when} — next ${next}`;
    });
    return `*${key === '' ? 'All targets' : key}*\n${lines.join('\n')}`;
  });
  if (sections.length === 0) return `No schedules configured (times in ${tz}).`;
  const missing = rows.filter((r) => r.inRedis === false).length;
  const warning =
    missing > 0
      ? `\n:warning: ${missing} planned schedule${missing === 1 ? ' is' : 's are'} missing from Redis. A running worker restores them within a minute; if this stays, no worker is running or Redis refuses writes.`
      : '';
  return `Schedules (times in ${tz}):\n${sections.join('\n\n')}${warning}`;
}
