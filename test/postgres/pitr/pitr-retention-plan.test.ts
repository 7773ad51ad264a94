import { describe, expect, it } from 'vitest';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import type { PartialEntry } from '../../../src/postgres/pitr/partial-store.ts';
import { planPitrRetention } from '../../../src/postgres/pitr/pitr-retention-plan.ts';
import type { WalEntry } from '../../../src/postgres/pitr/wal-store.ts';

const DAY = 86_400_000;
const now = new Date('2026-12-04T12:00:00Z');
const ago = (days: number) => new Date(now.getTime() - days * DAY).toISOString();

const base = (id: string, daysAgo: number, startLsn: string, timeline: number): BaseBackup => ({
  id,
  target: 'app',
  file: 'base.tar.zst.age',
  bytes: 1000,
  rawBytes: 5000,
  sha256: 'a'.repeat(64),
  encryption: 'age',
  startedAt: ago(daysAgo + 0.01),
  finishedAt: ago(daysAgo),
  startLsn,
  endLsn: startLsn,
  timeline,
  pgBasebackupVersion: 'pg_basebackup (PostgreSQL) 17',
});
const wal = (name: string, daysAgo: number): WalEntry => ({
  name,
  file: `${name}.zst.age`,
  bytes: 10,
  sha256: 'b'.repeat(64),
  rawBytes: 16 * 1024 * 1024,
  compression: 'zstd',
  encryption: 'age',
  archivedAt: ago(daysAgo),
});

/**
 * The plan across a timeline switch (a promoted restore continues on timeline 2), where names alone mislead:
 * timeline 1's segments after the fork are not before the kept base backup, and history files follow their timeline.
 */
describe('planPitrRetention', () => {
  it('keeps the base backup the newest timeline’s window starts from, not an old primary’s taken past its switch (review)', () => {
    // Timeline 1 left at 0/5000000 (history recorded); `late` was taken on the old primary after that, another branch.
    const late = { ...base('late', 10, '0/6000028', 1), endLsn: '0/6000100' };
    const bases = [base('b1', 20, '0/2000028', 1), late, base('new', 1, '0/8000028', 2)];
    const entries = [
      wal('000000010000000000000002', 20),
      wal('000000010000000000000003', 19),
      wal('000000010000000000000004', 18),
      wal('000000010000000000000005', 12),
      wal('000000010000000000000006', 10),
      { ...wal('00000002.history', 11), forks: [{ timeline: 1, switchLsn: '0/5000000' }] },
      wal('000000020000000000000005', 11),
      wal('000000020000000000000006', 10),
      wal('000000020000000000000007', 5),
      wal('000000020000000000000008', 1),
    ];
    const plan = planPitrRetention({ target: 'app', bases, wal: entries, now, retentionDays: 7, reserved: new Set() });
    expect(plan.keepBases.map((k) => k.base.id)).toEqual(['b1', 'late', 'new']);
    expect(plan.walFrom).toBe('000000010000000000000002');
    expect(plan.deleteWal).toEqual([]);
    // The window after it still reaches back past the cutoff, along timeline 2 from b1.
    expect(plan.after?.opens.id).toBe('b1');
    expect(plan.after?.timeline).toBe(2);
  });

  it('across timelines: deletes timeline 1 before the kept base backup and its history, keeps what timeline 2 needs', () => {
    const bases = [base('old', 20, '0/2000028', 1), base('kept', 10, '0/6000028', 2), base('new', 1, '0/8000028', 2)];
    const entries = [
      wal('000000010000000000000002', 20),
      wal('000000010000000000000003', 19),
      wal('000000010000000000000005', 12),
      // Timeline 1 went on a little after the fork at 5: not before the kept base's start in WAL order, kept.
      wal('000000010000000000000006', 11),
      wal('00000002.history', 11),
      wal('000000020000000000000005', 11),
      wal('000000020000000000000006', 10),
      wal('000000020000000000000007', 5),
      wal('000000020000000000000008', 1),
    ];
    const plan = planPitrRetention({ target: 'app', bases, wal: entries, now, retentionDays: 7, reserved: new Set() });
    expect(plan.deleteBases.map((d) => d.base.id)).toEqual(['old']);
    expect(plan.keepBases.map((k) => k.base.id)).toEqual(['kept', 'new']);
    expect(plan.walFrom).toBe('000000020000000000000006');
    expect(plan.deleteWal.map((e) => e.name)).toEqual([
      '000000010000000000000002',
      '000000010000000000000003',
      '000000010000000000000005',
      '000000020000000000000005',
    ]);
  });

  it('deletes the history of timelines older than the oldest kept base backup’s', () => {
    const bases = [base('t2', 10, '0/6000028', 2), base('t3', 1, '0/9000028', 3)];
    const entries = [wal('00000002.history', 11), wal('00000003.history', 2), wal('000000020000000000000006', 10), wal('000000030000000000000009', 1)];
    const plan = planPitrRetention({ target: 'app', bases, wal: entries, now, retentionDays: 7, reserved: new Set() });
    expect(plan.deleteBases.map((d) => d.base.id)).toEqual([]);
    expect(plan.deleteWal.map((e) => e.name)).toEqual([]);
    const later = planPitrRetention({ target: 'app', bases, wal: entries, now, retentionDays: 0.5, reserved: new Set() });
    expect(later.deleteBases.map((d) => d.base.id)).toEqual(['t2']);
    expect(later.deleteWal.map((e) => e.name)).toEqual(['00000002.history', '000000020000000000000006']);
  });

  it('reports the window as far as the partial segment’s snapshot reaches, and never deletes the snapshot', () => {
    const bases = [base('kept', 10, '0/2000028', 1), base('new', 1, '0/6000028', 1)];
    const entries = ['02', '03', '04', '05', '06'].map((n, i) => wal(`0000000100000000000000${n}`, 10 - i * 2));
    // A quiet server: the newest whole segment was archived 2 days ago; its successor has been snapshotted since.
    const partial: PartialEntry = {
      ...wal('000000010000000000000007', 0.01),
      file: '000000010000000000000007.4000.zst.age',
      partial: true,
      walBytes: 0x4000,
      walEnd: '0/7004000',
      coversAt: ago(0.01),
    };
    const plan = planPitrRetention({ target: 'app', bases, wal: entries, partials: [partial], now, retentionDays: 7, reserved: new Set() });
    expect([plan.before?.to.toISOString(), plan.after?.to.toISOString()]).toEqual([ago(0.01), ago(0.01)]);
    expect(plan.deleteWal.map((e) => e.name)).not.toContain(partial.name);
    const without = planPitrRetention({ target: 'app', bases, wal: entries, now, retentionDays: 7, reserved: new Set() });
    expect(without.after?.to.toISOString()).toBe(ago(2));
  });

  it('deletes nothing without a base backup, and says why', () => {
    const plan = planPitrRetention({ target: 'app', bases: [], wal: [wal('000000010000000000000002', 30)], now, retentionDays: 7, reserved: new Set() });
    expect(plan.deleteWal).toEqual([]);
    expect(plan.note).toBe('no base backup yet: WAL kept (it is judged against the base backups)');
  });
});
