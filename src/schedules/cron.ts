import { CronExpressionParser } from 'cron-parser';
import { type RunRule, shouldRunToday, zonedParts } from './time.ts';

/**
 * Cron patterns are evaluated with cron-parser, the same library (and version, 5.x) BullMQ 6 uses to compute a
 * job scheduler's next run: what `/backup status` shows is what Redis will do, DST quirks included.
 */

const FIELD_NAMES = ['minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;

/**
 * Why a user's pattern is refused, or null. Only 5 fields: a 6-field pattern (seconds first) shifts the meaning
 * of every field, so a pasted Quartz-style `0 0 2 * * ?` would quietly run at another time than intended.
 */
export function cronProblem(expr: string): string | null {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) return `a cron pattern has 5 fields (${FIELD_NAMES.join(' ')}), this one has ${fields.length}`;
  const [, , dom, , dow] = fields;
  // cron runs when day-of-month OR day-of-week matches: `0 3 1-7 * 6` is every day 1–7 plus every Saturday.
  if (dom !== '*' && dom !== '?' && dow !== '*' && dow !== '?') {
    return 'day-of-month and day-of-week are both set, and cron ORs them (`0 3 1-7 * 6` runs on days 1–7 and on every Saturday); for "first Saturday" write `0 3 * * 6#1`';
  }
  try {
    // One next() proves the pattern can fire at all (`0 0 30 2 *` parses but never runs).
    CronExpressionParser.parse(expr, { tz: 'UTC', currentDate: new Date(0) }).next();
  } catch (err) {
    return `not a cron pattern that can run: ${(err as Error).message}`;
  }
  return null;
}

/**
 * The next `count` runs after `from` (exclusive), in order, skipping runs the day rule would skip at run time.
 * The cap bounds the search: a rule that can never match (a bug) must not hang `/backup status`.
 *
 * Remembered per pattern, zone, rule and count: the runs after any moment from `from` up to (not including) the
 * first of them are the same runs, so an answer is reused while it holds, and computed again after. Not across a
 * change of the zone's offset: there cron-parser's answer depends on where it starts (a 02:30 that DST skips is run
 * at 03:30 when asked from before the change, not when asked from 03:09), and the reuse must not differ. With
 * 200 targets sharing a few schedules, `/backup status` and `/backup health` asked cron-parser (through Luxon) for
 * thousands of runs per answer: 50–200 ms of the bot's CPU each, the most of their time (bench/fleet.ts profile).
 */
export function nextRuns(entry: { pattern: string; tz: string; rule?: RunRule | null }, from: Date, count: number): Date[] {
  const key = `${entry.pattern}\u0000${entry.tz}\u0000${entry.rule ?? ''}\u0000${count}`;
  const at = from.getTime();
  const hit = remembered.get(key);
  const first = hit?.runs[0]?.getTime();
  const offset = zonedParts(from, entry.tz).offset;
  if (hit && first !== undefined && at >= hit.from && at < first && offset === hit.offset) return hit.runs.map((d) => new Date(d));
  const runs = computeNextRuns(entry, from, count);
  // Keys are the config's schedules: a handful, unless patterns come from elsewhere; bounded all the same.
  if (remembered.size >= 1000) remembered.clear();
  remembered.set(key, { from: at, offset, runs });
  return runs.map((d) => new Date(d));
}

const remembered = new Map<string, { from: number; offset: string; runs: readonly Date[] }>();

/** nextRuns without the memory (what it is checked against). */
export function computeNextRuns(entry: { pattern: string; tz: string; rule?: RunRule | null }, from: Date, count: number): Date[] {
  const rule = entry.rule ?? null;
  const it = CronExpressionParser.parse(entry.pattern, { currentDate: from, tz: entry.tz });
  const runs: Date[] = [];
  for (let tries = 0; runs.length < count && tries < count * 64 + 64; tries++) {
    let next: Date;
    try {
      next = it.next().toDate();
    } catch {
      break; // no further run (cron-parser throws past its search limit)
    }
    if (shouldRunToday(rule, next, entry.tz)) runs.push(next);
  }
  return runs;
}

const DAY_NAMES = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const ORDINALS = ['first', 'second', 'third', 'fourth', 'fifth'];
const pad = (s: string) => s.padStart(2, '0');

/** A short English reading of the common shapes; anything else is shown as the pattern itself. */
export function describeCron(expr: string): string {
  const [min = '', hour = '', dom = '', month = '', dow = ''] = expr.trim().split(/\s+/);
  const num = /^\d+$/;
  if (!num.test(min)) return `cron \`${expr}\``;
  const everyDay = dom === '*' && month === '*' && dow === '*';
  if (hour === '*' && everyDay) return `every hour at :${pad(min)}`;
  const step = /^\*\/(\d+)$/.exec(hour);
  if (step && everyDay) {
    const n = Number(step[1]);
    // `*/6` runs at 00, 06, 12, 18 local time: listed when that fits on a line, as the README's table has it.
    const hours = Array.from({ length: Math.ceil(24 / n) }, (_, i) => `${pad(String(i * n))}:${pad(min)}`);
    return `every ${n} hours at :${pad(min)} (${hours.length <= 6 ? hours.join(', ') : `${hours.slice(0, 3).join(', ')}, …`})`;
  }
  if (!num.test(hour)) return `cron \`${expr}\``;
  const at = `${pad(hour)}:${pad(min)}`;
  if (everyDay) return `every day at ${at}`;
  if (dom === '*' && month === '*' && /^[0-7]$/.test(dow)) return `every ${DAY_NAMES[Number(dow) % 7]} at ${at}`;
  const nth = /^([0-7])#([1-5])$/.exec(dow);
  if (nth && dom === '*') {
    const which = `${ORDINALS[Number(nth[2]) - 1]} ${DAY_NAMES[Number(nth[1]) % 7]}`;
    if (month === '*') return `${which} of the month at ${at}`;
    if (month === '1,4,7,10') return `${which} of each quarter (Jan, Apr, Jul, Oct) at ${at}`;
  }
  return `cron \`${expr}\``;
}
