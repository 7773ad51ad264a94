import { getNextMillis } from 'bullmq';
import { CronExpressionParser } from 'cron-parser';
import { describe, expect, it } from 'vitest';
import { cronProblem, formatInZone, nextRuns } from '../../src/schedules/index.ts';

/**
 * DST and calendar edges with a fixed clock (every call is given its `from`). Each expectation is also checked
 * against BullMQ's own getNextMillis, so `/backup status` and the scheduler in Redis agree.
 */

const local = (dates: Date[], tz: string) => dates.map((d) => formatInZone(d, tz));

/** What BullMQ does: each next run computed from the previous one, with the same options we upsert. */
function bullmqRuns(pattern: string, tz: string, from: Date, count: number): Date[] {
  const out: Date[] = [];
  let millis = from.getTime();
  for (let i = 0; i < count; i++) {
    const next = getNextMillis(millis, { pattern, tz });
    if (next === undefined) break;
    out.push(new Date(next));
    millis = next;
  }
  return out;
}

function runs(pattern: string, tz: string, from: string, count: number): string[] {
  const ours = nextRuns({ pattern, tz }, new Date(from), count);
  expect(ours.map((d) => d.toISOString())).toEqual(bullmqRuns(pattern, tz, new Date(from), count).map((d) => d.toISOString()));
  return local(ours, tz);
}

describe('daily 02:00 across DST changes', () => {
  it('Europe/Paris, March: 02:00 does not exist on the 29th, the run moves to 03:00 CEST, once', () => {
    expect(runs('0 2 * * *', 'Europe/Paris', '2026-03-27T12:00:00Z', 4)).toEqual([
      'Sat 2026-03-28 02:00 UTC+01:00',
      'Sun 2026-03-29 03:00 UTC+02:00',
      'Mon 2026-03-30 02:00 UTC+02:00',
      'Tue 2026-03-31 02:00 UTC+02:00',
    ]);
  });

  it('Europe/Paris, October: 02:00 happens twice on the 25th, the run happens once, at the first (CEST)', () => {
    const dates = nextRuns({ pattern: '0 2 * * *', tz: 'Europe/Paris' }, new Date('2026-10-23T12:00:00Z'), 4);
    expect(dates.map((d) => d.toISOString())).toEqual([
      '2026-10-24T00:00:00.000Z',
      '2026-10-25T00:00:00.000Z',
      '2026-10-26T01:00:00.000Z',
      '2026-10-27T01:00:00.000Z',
    ]);
    expect(local(dates, 'Europe/Paris')[1]).toBe('Sun 2026-10-25 02:00 UTC+02:00');
    // BullMQ computes the next run when a job starts: from the first 02:00, and from the repeated 02:00 (CET),
    // the next one is the following night, never a second run the same night.
    expect(bullmqRuns('0 2 * * *', 'Europe/Paris', new Date('2026-10-25T00:00:00Z'), 1)[0]?.toISOString()).toBe('2026-10-26T01:00:00.000Z');
    expect(bullmqRuns('0 2 * * *', 'Europe/Paris', new Date('2026-10-25T01:00:00Z'), 1)[0]?.toISOString()).toBe('2026-10-26T01:00:00.000Z');
    expect(runs('0 2 * * *', 'Europe/Paris', '2026-10-23T12:00:00Z', 4)).toHaveLength(4);
  });

  it('America/New_York, March: 02:00 on the 8th moves to 03:00 EDT, once', () => {
    expect(runs('0 2 * * *', 'America/New_York', '2026-03-06T12:00:00Z', 3)).toEqual([
      'Sat 2026-03-07 02:00 UTC-05:00',
      'Sun 2026-03-08 03:00 UTC-04:00',
      'Mon 2026-03-09 02:00 UTC-04:00',
    ]);
  });

  it('America/New_York, November: 01:30 happens twice on the 1st, the run happens once (EDT)', () => {
    expect(runs('30 1 * * *', 'America/New_York', '2026-10-30T12:00:00Z', 3)).toEqual([
      'Sat 2026-10-31 01:30 UTC-04:00',
      'Sun 2026-11-01 01:30 UTC-04:00',
      'Mon 2026-11-02 01:30 UTC-05:00',
    ]);
    // 02:00 is not repeated in New York (01:00–01:59 is): a plain run.
    expect(runs('0 2 * * *', 'America/New_York', '2026-10-31T12:00:00Z', 1)).toEqual(['Sun 2026-11-01 02:00 UTC-05:00']);
  });

  it('every 6 hours keeps the local hours 00/06/12/18; the interval is 5 h or 7 h across a change', () => {
    const spring = nextRuns({ pattern: '0 */6 * * *', tz: 'Europe/Paris' }, new Date('2026-03-28T20:00:00Z'), 2);
    expect(local(spring, 'Europe/Paris')).toEqual(['Sun 2026-03-29 00:00 UTC+01:00', 'Sun 2026-03-29 06:00 UTC+02:00']);
    expect(((spring[1]?.getTime() ?? 0) - (spring[0]?.getTime() ?? 0)) / 3600e3).toBe(5);
    const autumn = runs('0 */6 * * *', 'Europe/Paris', '2026-10-24T20:00:00Z', 2);
    expect(autumn).toEqual(['Sun 2026-10-25 00:00 UTC+02:00', 'Sun 2026-10-25 06:00 UTC+01:00']);
  });
});

describe('first Saturday of the month (`6#1`)', () => {
  const monthly = { pattern: '0 3 * * 6#1', tz: 'Europe/Paris', rule: 'first-saturday' as const };

  it('runs on the 1st when the month starts on a Saturday (August 2026)', () => {
    expect(local(nextRuns(monthly, new Date('2026-07-05T00:00:00Z'), 1), 'Europe/Paris')).toEqual(['Sat 2026-08-01 03:00 UTC+02:00']);
  });

  it('runs on the 7th when the month starts on a Sunday (February and November 2026)', () => {
    expect(local(nextRuns(monthly, new Date('2026-01-04T00:00:00Z'), 1), 'Europe/Paris')).toEqual(['Sat 2026-02-07 03:00 UTC+01:00']);
    expect(local(nextRuns(monthly, new Date('2026-10-04T00:00:00Z'), 1), 'Europe/Paris')).toEqual(['Sat 2026-11-07 03:00 UTC+01:00']);
  });

  it('crosses the year boundary and runs once a month, always a Saturday on day 1–7', () => {
    const dates = runs(monthly.pattern, monthly.tz, '2026-11-08T00:00:00Z', 14);
    expect(dates.slice(0, 3)).toEqual(['Sat 2026-12-05 03:00 UTC+01:00', 'Sat 2027-01-02 03:00 UTC+01:00', 'Sat 2027-02-06 03:00 UTC+01:00']);
    for (const d of dates) expect(d).toMatch(/^Sat \d{4}-\d{2}-0[1-7] 03:00/);
    expect(new Set(dates.map((d) => d.slice(4, 11))).size).toBe(14);
  });

  it('quarterly: first Saturday of January, April, July and October only', () => {
    expect(runs('0 3 * 1,4,7,10 6#1', 'Europe/Paris', '2026-01-04T00:00:00Z', 4)).toEqual([
      'Sat 2026-04-04 03:00 UTC+02:00',
      'Sat 2026-07-04 03:00 UTC+02:00',
      'Sat 2026-10-03 03:00 UTC+02:00',
      'Sat 2027-01-02 03:00 UTC+01:00',
    ]);
  });

  it('the tempting `0 3 1-7 * 6` is refused: cron ORs the two day fields and it fires on most days', () => {
    const fires = CronExpressionParser.parse('0 3 1-7 * 6', { tz: 'UTC', currentDate: new Date('2026-07-31T12:00:00Z') }).take(10);
    expect(fires.map((d) => d.toDate().getUTCDate())).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 15, 22]);
    expect(cronProblem('0 3 1-7 * 6')).toMatch(/ORs them/);
    expect(cronProblem('0 3 * * 6#1')).toBeNull();
  });
});
