import { describe, expect, it } from 'vitest';
import { computeNextRuns, nextRuns } from '../../src/schedules/cron.ts';

/**
 * nextRuns remembers its answer while it holds (schedules/cron.ts). Walked minute by minute-ish through two DST
 * changes and a first-Saturday rule, the remembered answers must be exactly the computed ones.
 */
const SCHEDULES = [
  { pattern: '0 2 * * *', tz: 'Europe/Berlin' },
  { pattern: '30 2 * * *', tz: 'Europe/Berlin' },
  { pattern: '0 */6 * * *', tz: 'America/New_York' },
  { pattern: '0 3 * * 6#1', tz: 'Europe/Berlin', rule: 'first-saturday' as const },
  { pattern: '0 4 * * 0', tz: 'UTC' },
];

function walk(startIso: string, hours: number, stepMs: number, count: number): number {
  let compared = 0;
  for (let t = Date.parse(startIso); t < Date.parse(startIso) + hours * 3600_000; t += stepMs) {
    for (const s of SCHEDULES) {
      const from = new Date(t);
      expect(
        nextRuns(s, from, count).map((d) => d.toISOString()),
        `${s.pattern} ${s.tz} from ${from.toISOString()}`,
      ).toEqual(computeNextRuns(s, from, count).map((d) => d.toISOString()));
      compared++;
    }
  }
  return compared;
}

describe('nextRuns remembered', () => {
  it('gives the computed runs at every moment, across the spring DST change, exact to the millisecond at a run', () => {
    // 13 minutes 7.5 s apart: moments fall on, just before and just after runs over three days.
    expect(walk('2026-03-28T00:00:00Z', 72, 787_500, 1)).toBeGreaterThan(1000);
    for (const s of SCHEDULES) {
      const [run] = computeNextRuns(s, new Date('2026-03-28T00:00:00Z'), 1);
      if (!run) throw new Error('no run');
      for (const delta of [-1, 0, 1]) {
        const at = new Date(run.getTime() + delta);
        expect(nextRuns(s, at, 3)).toEqual(computeNextRuns(s, at, 3));
      }
    }
  });

  it('across the autumn change, for a list of ten runs (the stale limit of health), and going back in time', () => {
    expect(walk('2026-10-24T00:00:00Z', 48, 1_800_000, 10)).toBeGreaterThan(400);
    expect(walk('2026-09-01T00:00:00Z', 24, 3_600_000, 10)).toBeGreaterThan(100);
  });

  it('hands out copies: a caller changing a date changes nobody else’s answer', () => {
    const from = new Date('2026-06-01T00:00:00Z');
    const first = nextRuns(SCHEDULES[0] as (typeof SCHEDULES)[0], from, 2);
    first[0]?.setTime(0);
    expect(nextRuns(SCHEDULES[0] as (typeof SCHEDULES)[0], from, 2)).toEqual(computeNextRuns(SCHEDULES[0] as (typeof SCHEDULES)[0], from, 2));
  });
});
