import { describe, expect, it } from 'vitest';
import { makeManifest } from '../fixtures/backups.ts';
import { type RetentionBackup, UNFINISHED_MAX_AGE_MS, planRetention, retentionReport } from '../../src/storage/retention-plan.ts';

const NOW = new Date('2026-11-25T05:00:00Z');
const DAY = 24 * 3600 * 1000;
const iso = (msBeforeNow: number) => new Date(NOW.getTime() - msBeforeNow).toISOString();

/** A backup started `ageDays` ago, kept `keepDays`. */
function backup(
  target: string,
  backupId: string,
  ageDays: number,
  keepDays: number | null,
  retentionClass: RetentionBackup['retentionClass'] = 'daily',
): RetentionBackup {
  const startedAt = iso(ageDays * DAY);
  return {
    target,
    backupId,
    startedAt,
    retentionClass,
    retainUntil: keepDays === null ? null : new Date(Date.parse(startedAt) + keepDays * DAY).toISOString(),
  };
}

const plan = (backups: RetentionBackup[], extra: Partial<Parameters<typeof planRetention>[0]> = {}) =>
  planRetention({ backups, now: NOW, runningRestoreTests: new Set(), unfinished: [], ...extra });

const ids = (list: Array<{ backupId: string }>) => list.map((d) => d.backupId);

describe('planRetention', () => {
  it('deletes what is past its deadline, oldest first, and keeps the rest with their deadline', () => {
    const p = plan([
      backup('shop', 'shop-a', 40, 30),
      backup('shop', 'shop-b', 31, 30),
      backup('shop', 'shop-c', 2, 30),
      backup('shop', 'shop-f', 8, 7, 'frequent'),
    ]);
    expect(ids(p.delete)).toEqual(['shop-a', 'shop-b', 'shop-f']);
    expect(p.delete[0]).toEqual({ target: 'shop', backupId: 'shop-a', retentionClass: 'daily', reason: 'expired Sun 2026-11-15 05:00 UTC+00:00 (daily)' });
    expect(p.keep).toEqual([{ target: 'shop', backupId: 'shop-c', reason: 'retained until Wed 2026-12-23 05:00 UTC+00:00 (daily)' }]);
  });

  it('writes deadlines in the configured zone, the one the schedules use, with its offset', () => {
    const p = plan([backup('shop', 'shop-a', 40, 30), backup('shop', 'shop-c', 2, 30)], { timezone: 'America/New_York' });
    expect(p.delete[0]?.reason).toBe('expired Sun 2026-11-15 00:00 UTC-05:00 (daily)');
    expect(retentionReport(p, true).split('\n')[1]).toBe('• Would delete shop-a: expired Sun 2026-11-15 00:00 UTC-05:00 (daily)');
  });

  it('keeps a backup exactly at its deadline and deletes it one millisecond later', () => {
    const b = { ...backup('shop', 'shop-old', 30, 30), retainUntil: NOW.toISOString() };
    const newer = backup('shop', 'shop-new', 1, 30);
    expect(ids(plan([b, newer]).delete)).toEqual([]);
    expect(ids(planRetention({ backups: [b, newer], now: new Date(NOW.getTime() + 1), runningRestoreTests: new Set(), unfinished: [] }).delete)).toEqual([
      'shop-old',
    ]);
  });

  it('never deletes the only backup of a target, even long expired', () => {
    const p = plan([backup('shop', 'shop-only', 400, 30)]);
    expect(p.delete).toEqual([]);
    expect(p.keep).toEqual([
      { target: 'shop', backupId: 'shop-only', reason: 'expired Thu 2025-11-20 05:00 UTC+00:00 (daily), kept: the newest good backup of shop' },
    ]);
  });

  it('finds the newest by startedAt, not by id (WAL-G #636)', () => {
    // Ids that sort the wrong way round: by name "shop-z" looks newest, but it is the oldest.
    const p = plan([backup('shop', 'shop-z-20250101T000000Z', 90, 30), backup('shop', 'shop-a-20250101T000000Z', 50, 30)]);
    expect(ids(p.delete)).toEqual(['shop-z-20250101T000000Z']);
    expect(ids(p.keep)).toEqual(['shop-a-20250101T000000Z']);
    // Same second: `-10` is newer than `-2`.
    const at = iso(60 * DAY);
    const same = (id: string): RetentionBackup => ({ target: 'shop', backupId: id, startedAt: at, retentionClass: 'daily', retainUntil: iso(DAY) });
    expect(ids(plan([same('shop-20260926T050000Z-10'), same('shop-20260926T050000Z-2')]).keep)).toEqual(['shop-20260926T050000Z-10']);
  });

  it('protects the newest good backup when the newest failed its restore test', () => {
    const p = plan([backup('shop', 'shop-good', 40, 30), backup('shop', 'shop-bad', 1, 30)], { failedRestoreTests: new Set(['shop-bad']) });
    expect(p.delete).toEqual([]);
    expect(p.keep.find((k) => k.backupId === 'shop-good')?.reason).toMatch(/kept: the newest good backup of shop$/);
    // None known good: the newest is still never deleted.
    const none = plan([backup('shop', 'shop-1', 50, 30), backup('shop', 'shop-2', 40, 30)], { failedRestoreTests: new Set(['shop-1', 'shop-2']) });
    expect(ids(none.delete)).toEqual(['shop-1']);
    expect(none.keep[0]?.reason).toMatch(/kept: the newest backup of shop$/);
  });

  it('keeps an expired backup whose restore test is running', () => {
    const p = plan([backup('shop', 'shop-tested', 35, 30), backup('shop', 'shop-new', 1, 30)], { runningRestoreTests: new Set(['shop-tested']) });
    expect(p.delete).toEqual([]);
    expect(p.keep[0]).toEqual({
      target: 'shop',
      backupId: 'shop-tested',
      reason: 'expired Fri 2026-11-20 05:00 UTC+00:00 (daily), kept: a restore test of it is running',
    });
  });

  it('keeps an expired backup a selective restore is reading', () => {
    const p = plan([backup('shop', 'shop-read', 35, 30), backup('shop', 'shop-new', 1, 30)], { runningRestores: new Set(['shop-read']) });
    expect(p.delete).toEqual([]);
    expect(p.keep[0]).toEqual({
      target: 'shop',
      backupId: 'shop-read',
      reason: 'expired Fri 2026-11-20 05:00 UTC+00:00 (daily), kept: a restore from it is running',
    });
  });

  it('honours each manifest’s own deadline: pre-migration 90 days outlives daily 30, none means keep', () => {
    const p = plan([
      backup('shop', 'shop-daily', 60, 30),
      backup('shop', 'shop-premig', 60, 90, 'pre-migration'),
      backup('shop', 'shop-premig-old', 91, 90, 'pre-migration'),
      backup('shop', 'shop-forever', 500, null, 'manual'),
      backup('shop', 'shop-new', 0, 30),
    ]);
    expect(ids(p.delete).sort()).toEqual(['shop-daily', 'shop-premig-old']);
    expect(p.keep.find((k) => k.backupId === 'shop-premig')?.reason).toBe('retained until Fri 2026-12-25 05:00 UTC+00:00 (pre-migration)');
    expect(p.keep.find((k) => k.backupId === 'shop-forever')?.reason).toBe('no deadline (manual): kept until deleted by hand');
  });

  it('judges each target on its own', () => {
    const p = plan([backup('shop', 'shop-1', 40, 30), backup('shop', 'shop-2', 1, 30), backup('crm', 'crm-1', 50, 30), backup('crm', 'crm-2', 45, 30)]);
    expect(p.delete.map((d) => `${d.target}/${d.backupId}`)).toEqual(['crm/crm-1', 'shop/shop-1']);
    expect(ids(p.keep)).toEqual(['crm-2', 'shop-2']);
  });

  it('cleans unfinished backups older than a day, unless still being written', () => {
    const unfinished = [
      { target: 'shop', backupId: 'shop-stuck', ageMs: UNFINISHED_MAX_AGE_MS + 1 },
      { target: 'shop', backupId: 'shop-day', ageMs: UNFINISHED_MAX_AGE_MS },
      { target: 'shop', backupId: 'shop-slow', ageMs: 30 * 3600 * 1000 },
    ];
    const p = plan([], { unfinished, runningBackups: new Set(['shop-slow']) });
    expect(p.cleanUnfinished).toEqual([{ target: 'shop', backupId: 'shop-stuck', reason: 'unfinished (no manifest), last written 24 h ago' }]);
  });

  it('reports what it deleted, or in a dry run would delete, and what it kept past a deadline', () => {
    const p = plan([backup('shop', 'shop-a', 40, 30), backup('shop', 'shop-b', 1, 30), backup('crm', 'crm-only', 40, 30)], {
      unfinished: [{ target: 'shop', backupId: 'shop-x', ageMs: 2 * DAY }],
    });
    expect(retentionReport(p, true)).toBe(
      [
        'Retention (dry run, nothing deleted): would delete 1 backup and 1 unfinished or damaged backup; kept 2.',
        '• Would delete shop-a: expired Sun 2026-11-15 05:00 UTC+00:00 (daily)',
        '• Would delete shop-x: unfinished (no manifest), last written 48 h ago',
        '• Kept crm-only: expired Sun 2026-11-15 05:00 UTC+00:00 (daily), kept: the newest good backup of crm',
      ].join('\n'),
    );
    expect(retentionReport(p, false).split('\n')[0]).toBe('Retention: deleted 1 backup and 1 unfinished or damaged backup; kept 2.');
  });

  it('takes the manifests as storage lists them', () => {
    const old = makeManifest({ target: 'shop', startedAt: '2026-10-01T02:00:00.000Z', retentionClass: 'daily', retainUntil: '2026-10-31T02:00:00.000Z' });
    const recent = makeManifest({ target: 'shop', startedAt: '2026-11-24T02:00:00.000Z', retentionClass: 'daily', retainUntil: '2026-12-24T02:00:00.000Z' });
    expect(ids(plan([recent, old]).delete)).toEqual(['shop-20261001T020000Z']);
  });
});
