import { describe, expect, it } from 'vitest';
import { evaluateHealth, median } from '../../src/health/index.ts';
import { HOUR, MB, NOW, ago, dailyBackups, healthyInput, makeManifest, pick } from './fixtures.ts';

const MIN = 60 * 1000;

describe('evaluateHealth: stale', () => {
  it('is ok at 24 h 59 min and critical at 25 h 1 min', () => {
    const fresh = pick(evaluateHealth(healthyInput({ backups: [makeManifest({ startedAt: ago(24 * HOUR + 59 * MIN) })] })), 'stale');
    expect(fresh).toMatchObject({ status: 'ok', severity: 'critical', value: 24 * HOUR + 59 * MIN });
    const stale = pick(evaluateHealth(healthyInput({ backups: [makeManifest({ startedAt: ago(25 * HOUR + MIN) })] })), 'stale');
    expect(stale.status).toBe('failing');
    expect(stale.severity).toBe('critical');
    expect(stale.summary).toBe('Backups of shop are stale: the newest backup is 25 h 1 min old (limit 25 h)');
    expect(stale.evidence).toBe('newest backup 25 h 1 min old (2026-11-23 10:59 UTC), limit 25 h');
  });

  it('says there is no backup yet when there is none', () => {
    const r = pick(evaluateHealth(healthyInput({ backups: [] })), 'stale');
    expect(r).toMatchObject({ status: 'failing', severity: 'critical' });
    expect(r.summary).toContain('no backup of shop yet');
    expect(r.value).toBeUndefined();
  });

  it('is a quiet warning for a target never backed up until its first scheduled backup is due, plus an hour', () => {
    const due = new Date(NOW.getTime() + 2 * HOUR);
    const waiting = pick(evaluateHealth(healthyInput({ backups: [], lastBackupRun: null, firstBackupDueAt: due })), 'stale');
    expect(waiting).toMatchObject({ status: 'failing', severity: 'warning', quiet: true });
    expect(waiting.evidence).toBe(
      'no backup of shop yet; the first scheduled backup is due at 2026-11-24 14:00 UTC (critical if there is none by 2026-11-24 15:00 UTC)',
    );
    const graced = pick(evaluateHealth(healthyInput({ backups: [], now: new Date(due.getTime() + 59 * MIN), firstBackupDueAt: due })), 'stale');
    expect(graced).toMatchObject({ severity: 'warning', quiet: true });
    const late = pick(evaluateHealth(healthyInput({ backups: [], now: new Date(due.getTime() + HOUR), firstBackupDueAt: due })), 'stale');
    expect(late).toMatchObject({ status: 'failing', severity: 'critical' });
    expect(late.quiet).toBeUndefined();
    expect(late.evidence).toBe('no backup of shop yet (the first was due at 2026-11-24 14:00 UTC)');
    // Damaged backups stored: backed up before, so no "first was due", least of all at a time still to come (QA).
    const damaged = [{ backupId: 'shop-20261120T020000Z', why: 'marked damaged by the checksum scrub' }];
    const aside = pick(evaluateHealth(healthyInput({ backups: [], damaged, firstBackupDueAt: due })), 'stale');
    expect(aside).toMatchObject({ status: 'failing', severity: 'critical' });
    expect(aside.evidence).toBe('no restorable backup of shop: 1 stored is damaged');
  });

  it('counts the newest backup of any class when no class limit is configured', () => {
    const backups = [makeManifest({ startedAt: ago(40 * HOUR) }), makeManifest({ startedAt: ago(HOUR), retentionClass: 'manual' })];
    expect(pick(evaluateHealth(healthyInput({ backups })), 'stale').status).toBe('ok');
  });

  it('checks each configured class on its own and reports the worst', () => {
    const backups = [
      makeManifest({ startedAt: ago(HOUR), retentionClass: 'manual' }),
      makeManifest({ startedAt: ago(20 * HOUR), retentionClass: 'daily' }),
      makeManifest({ startedAt: ago(9 * 24 * HOUR), retentionClass: 'weekly' }),
    ];
    const thresholds = { staleHoursByClass: { daily: 25, weekly: 8 * 24 } };
    const r = pick(evaluateHealth(healthyInput({ backups, thresholds })), 'stale');
    expect(r.status).toBe('failing');
    expect(r.summary).toBe('Backups of shop are stale: the newest weekly backup is 216 h 0 min old (limit 192 h)');
    expect(r.evidence).toMatch(/^newest daily backup 20 h 0 min old .*; newest weekly backup 216 h 0 min old/);

    const noWeekly = pick(evaluateHealth(healthyInput({ backups: backups.slice(0, 2), thresholds })), 'stale');
    expect(noWeekly.summary).toBe('Backups of shop are stale: no weekly backup of shop yet');

    const allFresh = [...backups.slice(0, 2), makeManifest({ startedAt: ago(2 * 24 * HOUR), retentionClass: 'weekly' })];
    expect(pick(evaluateHealth(healthyInput({ backups: allFresh, thresholds })), 'stale').status).toBe('ok');
  });

  it('does not let a fresh backup of another class hide a stale configured class', () => {
    const backups = [makeManifest({ startedAt: ago(HOUR), retentionClass: 'manual' }), makeManifest({ startedAt: ago(30 * HOUR), retentionClass: 'daily' })];
    const r = pick(evaluateHealth(healthyInput({ backups, thresholds: { staleHoursByClass: { daily: 25 } } })), 'stale');
    expect(r.status).toBe('failing');
  });
});

describe('evaluateHealth: size', () => {
  const previous = [384 * MB, 380 * MB, 390 * MB, 384 * MB, 400 * MB, 370 * MB, 384 * MB];
  const withNewest = (bytes: number) => pick(evaluateHealth(healthyInput({ backups: dailyBackups([bytes, ...previous]) })), 'size');

  it('fails at 49 % and 151 % of the median of the previous 7 and passes at 51 % and 149 %', () => {
    expect(withNewest(Math.round(0.49 * 384 * MB))).toMatchObject({ status: 'failing', severity: 'warning' });
    expect(withNewest(Math.round(0.51 * 384 * MB)).status).toBe('ok');
    expect(withNewest(Math.round(1.51 * 384 * MB)).status).toBe('failing');
    expect(withNewest(Math.round(1.49 * 384 * MB)).status).toBe('ok');
  });

  it('shows the numbers people need', () => {
    const r = withNewest(146 * MB);
    expect(r.evidence).toBe('146 MB, −62 % vs median 384 MB of the previous 7');
    expect(r.summary).toBe('Backup size of shop looks wrong (too small): 146 MB, −62 % vs median 384 MB of the previous 7');
    expect(r.value).toBe(146 * MB);
    expect(withNewest(600 * MB).evidence).toBe('600 MB, +56 % vs median 384 MB of the previous 7');
  });

  it('only looks at the previous sizeWindow backups', () => {
    const backups = dailyBackups([100 * MB, 100 * MB, 100 * MB, 100 * MB, 900 * MB, 900 * MB, 900 * MB]);
    const r = pick(evaluateHealth(healthyInput({ backups, thresholds: { sizeWindow: 3 } })), 'size');
    expect(r.status).toBe('ok');
    expect(r.evidence).toContain('of the previous 3');
  });

  it('judges no damage where nothing is stored: not judged, not "every stored backup is whole"', () => {
    const none = pick(evaluateHealth(healthyInput({ backups: [] })), 'damaged');
    expect(none).toMatchObject({ status: 'ok', unjudged: true, evidence: 'no backup stored' });
    const some = pick(evaluateHealth(healthyInput({ backups: dailyBackups([MB]) })), 'damaged');
    expect(some).toMatchObject({ status: 'ok', evidence: 'every stored backup is whole' });
    expect(some.unjudged).toBeUndefined();
  });

  it('damaged backups past their deadline: not paged, not "whole", and with nothing good left, stale says they are damaged, not "none yet" (QA)', () => {
    const expired = [
      { backupId: 'shop-20261001T020000Z', why: 'marked damaged', expired: true as const },
      { backupId: 'shop-20261002T020000Z', why: 'artifact database.pgdump.zst is missing', expired: true as const },
    ];
    const beside = pick(evaluateHealth(healthyInput({ backups: dailyBackups([MB]), damaged: expired })), 'damaged');
    expect(beside).toMatchObject({
      status: 'ok',
      evidence: 'none within its deadline; 2 stored past their deadline are damaged, and retention deletes them at its next run',
    });
    const alone = evaluateHealth(healthyInput({ backups: [], damaged: expired }));
    expect(pick(alone, 'damaged')).toMatchObject({ status: 'ok', evidence: expect.stringMatching(/^none within its deadline; 2 stored/) });
    expect(pick(alone, 'stale')).toMatchObject({ status: 'failing', evidence: 'no restorable backup of shop: 2 stored are damaged' });
    // One within its deadline beside them pages for that one alone.
    const mixed = pick(
      evaluateHealth(healthyInput({ backups: dailyBackups([MB]), damaged: [...expired, { backupId: 'shop-20261203T020000Z', why: 'marked damaged' }] })),
      'damaged',
    );
    expect(mixed.status).toBe('failing');
    expect(mixed.evidence).toMatch(/^shop-20261203T020000Z \(marked damaged\)\. /);
    expect(mixed.summary).toMatch(/^1 stored backup of shop is damaged/);
  });

  it('does not judge with fewer than 3 earlier backups, but still applies minBytes', () => {
    const backups = dailyBackups([MB, 384 * MB, 384 * MB]);
    const r = pick(evaluateHealth(healthyInput({ backups })), 'size');
    expect(r.status).toBe('ok');
    // Nothing compared: not judged (⚪), never "looks normal" (✅).
    expect(r).toMatchObject({ unjudged: true, summary: expect.stringMatching(/^Backup size of \S+ cannot be judged yet: /) });
    expect(r.evidence).toContain('not enough history (2 earlier backups, 3 needed)');
    const one = pick(evaluateHealth(healthyInput({ backups: dailyBackups([MB, MB]) })), 'size');
    expect(one.evidence).toContain('not enough history (1 earlier backup, 3 needed)');
    const floor = pick(evaluateHealth(healthyInput({ backups, thresholds: { minBytes: 10 * MB } })), 'size');
    expect(floor.status).toBe('failing');
    expect(floor.unjudged).toBeUndefined();
    expect(floor.evidence).toContain('minimum 10.0 MB');
  });

  it('takes the median, not the mean', () => {
    expect(median([1, 100, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});

describe('evaluateHealth: slow', () => {
  it('fails when the newest backup took longer than 2 h and recovers with the next one', () => {
    const slowOne = makeManifest({ startedAt: ago(5 * HOUR), durationMs: 2 * HOUR + MIN });
    const r = pick(evaluateHealth(healthyInput({ backups: [slowOne] })), 'slow');
    expect(r).toMatchObject({ status: 'failing', severity: 'warning', value: 2 * HOUR + MIN });
    expect(r.summary).toBe('Backups of shop are slow: the newest backup took 2 h 1 min (limit 2 h 0 min)');
    const next = makeManifest({ startedAt: ago(HOUR), durationMs: 2 * HOUR - MIN });
    expect(pick(evaluateHealth(healthyInput({ backups: [slowOne, next] })), 'slow').status).toBe('ok');
  });

  it('fails while a running backup has been running for more than 2 h', () => {
    const running = [{ jobId: '77', startedAt: ago(2 * HOUR + MIN) }];
    const r = pick(evaluateHealth(healthyInput({ running })), 'slow');
    expect(r.status).toBe('failing');
    expect(r.summary).toContain('job 77 has been running for 2 h 1 min');
    expect(r.evidence).toContain('since 2026-11-24 09:59 UTC');
    const young = pick(evaluateHealth(healthyInput({ running: [{ jobId: '78', startedAt: ago(2 * HOUR - MIN) }] })), 'slow');
    expect(young.status).toBe('ok');
  });
});

describe('evaluateHealth input', () => {
  it('leaves the caller’s array in its order', () => {
    const input = healthyInput();
    const before = input.backups.map((m) => m.backupId);
    evaluateHealth(input);
    expect(input.backups.map((m) => m.backupId)).toEqual(before);
  });
});
