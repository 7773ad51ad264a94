import { describe, expect, it } from 'vitest';
import type { ConditionResult } from '../../src/health/types.ts';
import { healthOverview } from '../../src/notifications/health-messages.ts';
import { formatScheduleStatus, type ScheduleStatusRow } from '../../src/schedules/status.ts';

/** Answers for a fleet (issue 17): 200 targets made /backup health 190,000 characters; Slack cuts a text at 40,000. */

const ok = (condition: ConditionResult['condition']): ConditionResult => ({
  condition,
  status: 'ok',
  severity: 'error',
  summary: `${condition} ok`,
  evidence: 'newest backup 3 h old (limit 25 h), 12 backups stored, median size 48 MB, longest run 41 s',
});
const failing = (condition: ConditionResult['condition'], evidence: string): ConditionResult => ({ ...ok(condition), status: 'failing', evidence });

function fleet(n: number, troubled: number[]) {
  return Array.from({ length: n }, (_, i) => ({
    target: `svc-${String(i).padStart(3, '0')}`,
    results: [troubled.includes(i) ? failing('stale', `newest backup 31 h old (limit 25 h) on svc-${i}`) : ok('stale'), ok('size'), ok('slow'), ok('disk')],
    stored: {},
  }));
}

describe('/backup health for a fleet', () => {
  it('shows every condition of every target while that fits one answer', () => {
    const text = healthOverview(fleet(3, [1]));
    expect(text.match(/^\*svc-\d{3}\*$/gm)).toHaveLength(3);
    expect(text.match(/:white_check_mark:/g)).toHaveLength(11);
    expect(text).toMatch(/:rotating_light: .*newest backup 31 h old/);
  });

  it('shows a check with nothing to judge as not judged, never as passed', () => {
    const none: ConditionResult = { ...ok('restore-test-failing'), unjudged: true, evidence: 'no restore test recorded' };
    const text = healthOverview([{ target: 'shop', results: [ok('stale'), none], stored: {} }]);
    expect(text).toContain(':white_circle: last restore test: no restore test recorded');
    expect(text.match(/:white_check_mark:/g)).toHaveLength(1);
  });

  it('for 200 targets: counts the healthy ones and shows each failing condition, within one answer', () => {
    const text = healthOverview(fleet(200, [7, 42, 199]));
    expect(text.length).toBeLessThanOrEqual(3900);
    expect(text).toMatch(/^\*200 targets:\* 197 healthy, 3 with problems\. Every condition of one target: `\/backup health <target>`\./);
    for (const t of ['svc-007', 'svc-042', 'svc-199']) expect(text).toContain(`*${t}*\n:rotating_light: `);
    expect(text).not.toContain(':white_check_mark:');
  });

  it('names the troubled targets it has no room to show', () => {
    const many = Array.from({ length: 120 }, (_, i) => i);
    const text = healthOverview(fleet(200, many));
    expect(text.length).toBeLessThanOrEqual(3900);
    const shown = text.match(/^\*svc-\d{3}\*$/gm)?.length ?? 0;
    expect(shown).toBeGreaterThan(5);
    expect(text).toContain(`_…and ${120 - shown} more with problems: svc-${String(shown).padStart(3, '0')}, `);
  });
});

describe('/backup status schedules for a fleet', () => {
  const rows = (n: number, missing: number[]): ScheduleStatusRow[] =>
    Array.from({ length: n }, (_, i) => ({
      id: `pgbb:backup:svc-${i}:daily`,
      target: `svc-${String(i % 200).padStart(3, '0')}`,
      label: 'daily backup',
      when: 'every day at 02:00',
      next: [new Date(Date.UTC(2026, 11, 6, 2, 0) + i * 1000)],
      inRedis: !missing.includes(i),
    }));

  it('sums up hundreds of schedules, with the soonest runs and every one Redis lacks, within the room given', () => {
    const text = formatScheduleStatus(rows(555, [10, 300]), 'UTC', 3000);
    expect(text.length).toBeLessThanOrEqual(3000);
    expect(text).toMatch(/^Schedules \(times in UTC\): 555 for 200 targets, :warning: \*2 missing from Redis: they will not run\*/);
    expect(text).toContain('• svc-010: daily backup — not in Redis; planned next');
    expect(text).toContain('• svc-100: daily backup — not in Redis; planned next');
    expect(text.match(/— next /g)).toHaveLength(5);
  });

  it('lists every schedule when they fit, as before', () => {
    const text = formatScheduleStatus(rows(3, []), 'UTC', 3000);
    expect(text).toMatch(/^Schedules \(times in UTC\):\n\*svc-000\*\n• daily backup: every day at 02:00 — next /);
  });
});
