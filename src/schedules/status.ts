import { describeCron, nextRuns } from './cron.ts';
import type { PlannedScheduler } from './plan.ts';
import { formatInZone } from './time.ts';

/** `/backup status`: each target's schedules with their next run in the configured time zone. */

export interface ScheduleStatusRow {
  id: string;
  target: string | null;
  label: string;
  /** How often, in words (`every day at 02:00`), or the pattern when there are none. */
  when: string;
  next: Date[];
}

export function scheduleStatus(plan: readonly PlannedScheduler[], now: Date, count = 1): ScheduleStatusRow[] {
  return plan.map((p) => ({ id: p.id, target: p.target, label: p.label, when: describeCron(p.pattern), next: nextRuns(p, now, count) }));
}

/** Plain mrkdwn lines grouped by target, bot-wide jobs last; times carry their UTC offset (DST-proof). */
export function formatScheduleStatus(rows: readonly ScheduleStatusRow[], tz: string): string {
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
      return `• ${r.label}: ${r.when} — next ${next}`;
    });
    return `*${key === '' ? 'All targets' : key}*\n${lines.join('\n')}`;
  });
  if (sections.length === 0) return `No schedules configured (times in ${tz}).`;
  return `Schedules (times in ${tz}):\n${sections.join('\n\n')}`;
}
