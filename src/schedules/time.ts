/**
 * Wall-clock helpers for schedules. Every decision about "which day is it" is made in the configured time zone
 * through Intl, never in the host's zone: workers may run on hosts in UTC while the team lives in Paris.
 */

export interface ZonedParts {
  year: number;
  month: number; // 1–12
  day: number; // 1–31
  /** 0 = Sunday … 6 = Saturday, as in cron. */
  weekday: number;
  hour: number;
  minute: number;
  /** `UTC+01:00`: the offset in force at that instant (shows which side of a DST change a run falls on). */
  offset: string;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

// Building an Intl formatter costs far more than using one; plan and status code format many dates per zone.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      weekday: 'short',
      hour: 'numeric',
      minute: 'numeric',
      hourCycle: 'h23',
      timeZoneName: 'longOffset',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** The IANA zone Intl resolves the name to (`utc` → `UTC`), or null when Intl does not know it. */
export function canonicalTimeZone(tz: string): string | null {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

export function zonedParts(at: Date, tz: string): ZonedParts {
  const parts = Object.fromEntries(
    formatterFor(tz)
      .formatToParts(at)
      .map((p) => [p.type, p.value]),
  );
  const raw = parts.timeZoneName ?? 'GMT';
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: WEEKDAYS.indexOf((parts.weekday ?? 'Sun') as (typeof WEEKDAYS)[number]),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    // Intl says `GMT` for a zero offset and `GMT+01:00` otherwise; people reading #incidents expect UTC±hh:mm.
    offset: raw === 'GMT' ? 'UTC+00:00' : raw.replace('GMT', 'UTC'),
  };
}

const pad = (n: number) => String(n).padStart(2, '0');

/**
 * One answer per zone and UTC minute (the text has minutes, and today's offsets are whole minutes): `/backup list`
 * formats the same few dozen times for every request of a burst, and formatToParts costs tens of µs each.
 */
const formatted = new Map<string, string>();

/** `Sat 2026-12-05 03:00 UTC+01:00`: local wall time plus the offset, so a time near a DST change is unambiguous. */
export function formatInZone(at: Date, tz: string): string {
  const key = `${tz} ${Math.floor(at.getTime() / 60_000)}`;
  let text = formatted.get(key);
  if (text === undefined) {
    const p = zonedParts(at, tz);
    text = `${WEEKDAYS[p.weekday]} ${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)} ${p.offset}`;
    if (formatted.size >= 4096) formatted.clear();
    formatted.set(key, text);
  }
  return text;
}

/** `HH:MM` (24 h) → the minute and hour fields of a cron pattern. */
export function parseTimeOfDay(hhmm: string): { hour: number; minute: number } {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(hhmm);
  if (!m) throw new Error(`not a time of day (HH:MM): ${hhmm}`);
  return { hour: Number(m[1]), minute: Number(m[2]) };
}

/**
 * Extra day rules a cron pattern cannot be trusted to carry on its own. The scheduler's pattern already encodes
 * them (`6#1`); the job checks again at its scheduled time (see shouldRunToday).
 */
export type RunRule = 'first-saturday' | 'first-saturday-of-quarter';

const QUARTER_MONTHS = new Set([1, 4, 7, 10]);

/**
 * Whether a job scheduled for `at` should do its work, judged on the calendar of `tz`. Pass the time the job was
 * scheduled for (BullMQ: `job.opts.prevMillis`), not the time a worker picked it up: a restore test delayed past
 * midnight by a worker outage must still run, not wait a month.
 */
export function shouldRunToday(rule: RunRule | null, at: Date, tz: string): boolean {
  if (rule === null) return true;
  const p = zonedParts(at, tz);
  const firstSaturday = p.weekday === 6 && p.day <= 7;
  if (rule === 'first-saturday') return firstSaturday;
  return firstSaturday && QUARTER_MONTHS.has(p.month);
}
