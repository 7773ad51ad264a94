import { describe, expect, it } from 'vitest';
import { canonicalTimeZone, describeCron, formatInZone, nextRuns, shouldRunToday, zonedParts } from '../../src/schedules/index.ts';

const days = (year: number, month: number, hourUtc: number) =>
  Array.from({ length: 31 }, (_, i) => new Date(Date.UTC(year, month - 1, i + 1, hourUtc))).filter((d) => d.getUTCMonth() === month - 1);

describe('shouldRunToday', () => {
  it('is true on exactly one day of every month for first-saturday', () => {
    for (let month = 1; month <= 12; month++) {
      const hits = days(2026, month, 10).filter((d) => shouldRunToday('first-saturday', d, 'UTC'));
      expect(hits, `month ${month}`).toHaveLength(1);
      expect(hits[0]?.getUTCDay()).toBe(6);
      expect(hits[0]?.getUTCDate()).toBeLessThanOrEqual(7);
    }
  });

  it('first-saturday-of-quarter only in January, April, July and October', () => {
    const months = Array.from({ length: 12 }, (_, i) => i + 1).filter((m) =>
      days(2026, m, 10).some((d) => shouldRunToday('first-saturday-of-quarter', d, 'UTC')),
    );
    expect(months).toEqual([1, 4, 7, 10]);
  });

  it('judges the day on the configured zone’s calendar, not UTC', () => {
    // Sat 2026-08-01 03:00 in Tokyo is Fri 2026-07-31 18:00 UTC.
    const at = new Date('2026-07-31T18:00:00Z');
    expect(shouldRunToday('first-saturday', at, 'Asia/Tokyo')).toBe(true);
    expect(shouldRunToday('first-saturday', at, 'UTC')).toBe(false);
    // Sat 2026-08-08 in Los Angeles is still day 8 there, even when UTC already says Sunday the 9th.
    expect(shouldRunToday('first-saturday', new Date('2026-08-09T02:00:00Z'), 'America/Los_Angeles')).toBe(false);
    expect(shouldRunToday(null, at, 'UTC')).toBe(true);
  });

  it('nextRuns drops runs the rule would skip (a pattern wider than the rule)', () => {
    const runs = nextRuns({ pattern: '0 3 * * 6', tz: 'UTC', rule: 'first-saturday' }, new Date('2026-07-05T00:00:00Z'), 3);
    expect(runs.map((d) => d.toISOString().slice(0, 10))).toEqual(['2026-08-01', '2026-09-05', '2026-10-03']);
  });
});

describe('time helpers', () => {
  it('canonicalises zone names and refuses unknown ones', () => {
    expect(canonicalTimeZone('utc')).toBe('UTC');
    expect(canonicalTimeZone('Europe/Paris')).toBe('Europe/Paris');
    expect(canonicalTimeZone('Mars/Olympus_Mons')).toBeNull();
    expect(canonicalTimeZone('+02:00')).toBeNull();
  });

  it('reads wall-clock parts and offsets', () => {
    expect(zonedParts(new Date('2026-03-29T01:00:00Z'), 'Europe/Paris')).toEqual({
      year: 2026,
      month: 3,
      day: 29,
      weekday: 0,
      hour: 3,
      minute: 0,
      offset: 'UTC+02:00',
    });
    expect(formatInZone(new Date('2026-11-25T00:00:00Z'), 'UTC')).toBe('Wed 2026-11-25 00:00 UTC+00:00');
    expect(formatInZone(new Date('2026-11-25T00:00:00Z'), 'Asia/Kolkata')).toBe('Wed 2026-11-25 05:30 UTC+05:30');
  });

  it('formats a remembered minute as it formats a new one, across both DST changes and any second of the minute', () => {
    const fresh = (d: Date, tz: string) => {
      const p = zonedParts(d, tz);
      const two = (n: number) => String(n).padStart(2, '0');
      return `${['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][p.weekday]} ${p.year}-${two(p.month)}-${two(p.day)} ${two(p.hour)}:${two(p.minute)} ${p.offset}`;
    };
    let compared = 0;
    for (const [tz, around] of [
      ['Europe/Paris', '2026-03-29T01:00:00Z'],
      ['Europe/Paris', '2026-10-25T01:00:00Z'],
      ['America/New_York', '2026-11-01T06:00:00Z'],
      ['Australia/Lord_Howe', '2026-04-04T15:00:00Z'],
    ] as const) {
      for (let m = -90; m <= 90; m++) {
        for (const s of [0, 17, 59.999]) {
          const d = new Date(Date.parse(around) + m * 60_000 + s * 1000);
          // Twice: the first call may fill the memory, the second reads it.
          expect([formatInZone(d, tz), formatInZone(d, tz)]).toEqual([fresh(d, tz), fresh(d, tz)]);
          compared++;
        }
      }
    }
    expect(compared).toBe(4 * 181 * 3);
  });

  it('describes the patterns the plan produces', () => {
    expect(describeCron('0 2 * * *')).toBe('every day at 02:00');
    expect(describeCron('0 */6 * * *')).toBe('every 6 hours at :00 (00:00, 06:00, 12:00, 18:00)');
    expect(describeCron('30 */2 * * *')).toBe('every 2 hours at :30 (00:30, 02:30, 04:30, …)');
    expect(describeCron('15 * * * *')).toBe('every hour at :15');
    expect(describeCron('0 2 * * 0')).toBe('every Sunday at 02:00');
    expect(describeCron('0 3 * * 6#1')).toBe('first Saturday of the month at 03:00');
    expect(describeCron('0 3 * 1,4,7,10 6#1')).toBe('first Saturday of each quarter (Jan, Apr, Jul, Oct) at 03:00');
    expect(describeCron('0 9 * * 1#2')).toBe('second Monday of the month at 09:00');
    expect(describeCron('*/5 1-3 * * *')).toBe('cron `*/5 1-3 * * *`');
  });
});
