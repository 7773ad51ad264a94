import { describe, expect, it } from 'vitest';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import type { WalEntry } from '../../../src/postgres/pitr/wal-store.ts';
import { inWindow, recoverableWindow, segmentOf, segmentPosition, walGaps } from '../../../src/postgres/pitr/window.ts';

const base = (startLsn: string, finishedAt: string, id = 'b') => ({ id, startLsn, timeline: 1, finishedAt }) as BaseBackup;
const seg = (name: string, archivedAt: string) => ({ name, archivedAt }) as WalEntry;

describe('the recoverable window', () => {
  it('names segments as PostgreSQL does', () => {
    expect(segmentOf('0/2000028', 1)).toBe('000000010000000000000002');
    expect(segmentOf('1/FF000060', 3)).toBe('0000000300000001000000FF');
    expect(segmentPosition('0000000100000002000000FF')).toEqual({ timeline: 1, n: 2 * 256 + 255 });
  });

  it('runs from the oldest base backup’s end to the newest segment archived', () => {
    const w = recoverableWindow(
      [base('0/2000028', '2026-12-04T10:00:00Z')],
      [
        seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
        seg('000000010000000000000003', '2026-12-04T11:00:00Z'),
        seg('00000002.history', '2026-12-04T11:30:00Z'),
      ],
    );
    expect(w).toEqual({ from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T11:00:00Z'), gaps: [], reachesNewest: true });
  });

  it('ends before a missing segment, and names it', () => {
    const w = recoverableWindow(
      [base('0/2000028', '2026-12-04T10:00:00Z')],
      [seg('000000010000000000000002', '2026-12-04T10:01:00Z'), seg('000000010000000000000004', '2026-12-04T12:00:00Z')],
    );
    expect(w).toEqual({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T10:01:00Z'),
      gaps: ['000000010000000000000003'],
      reachesNewest: false,
    });
  });

  it('is nothing without a base backup or WAL after it', () => {
    expect(recoverableWindow([], [seg('000000010000000000000002', '2026-12-04T10:01:00Z')])).toBeNull();
    expect(recoverableWindow([base('0/2000028', '2026-12-04T10:00:00Z')], [])).toBeNull();
  });

  it('starts again after a base backup taken since the gap, and keeps the stretch before it', () => {
    const bases = [base('0/2000028', '2026-12-04T10:00:00Z', 'old'), base('0/5000028', '2026-12-04T13:00:00Z', 'new')];
    const wal = [
      seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
      seg('000000010000000000000004', '2026-12-04T12:00:00Z'),
      seg('000000010000000000000005', '2026-12-04T13:05:00Z'),
      seg('000000010000000000000006', '2026-12-04T14:00:00Z'),
    ];
    const w = recoverableWindow(bases, wal);
    expect(w).toEqual({
      from: new Date('2026-12-04T13:00:00Z'),
      to: new Date('2026-12-04T14:00:00Z'),
      gaps: ['000000010000000000000003'],
      reachesNewest: true,
      earlier: { from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z') },
    });
    // A moment inside the gap's shadow is not recoverable; either side of it is.
    expect(inWindow(w as NonNullable<typeof w>, new Date('2026-12-04T11:00:00Z'))).toBe(false);
    expect(inWindow(w as NonNullable<typeof w>, new Date('2026-12-04T10:00:30Z'))).toBe(true);
    expect(inWindow(w as NonNullable<typeof w>, new Date('2026-12-04T13:30:00Z'))).toBe(true);
  });

  it('names every missing segment, across a log file boundary, even when nothing is recoverable', () => {
    const bases = [base('0/FE000028', '2026-12-04T10:00:00Z')];
    const wal = [seg('0000000100000000000000FE', '2026-12-04T09:59:00Z'), seg('000000010000000100000001', '2026-12-04T12:00:00Z')];
    expect(walGaps(bases, wal)).toEqual(['0000000100000000000000FF', '000000010000000100000000']);
    // The only segment before the gap was archived before the base backup ended: no stretch is whole.
    expect(recoverableWindow(bases, wal)).toBeNull();
  });

  it('is nothing when the stream began after the base backup (its first segment was never archived)', () => {
    const b = { id: 'b1', startLsn: '0/3000028', endLsn: '0/3000100', timeline: 1, finishedAt: '2026-12-04T10:00:00Z' } as BaseBackup;
    const w = recoverableWindow(
      [b],
      [
        { name: '000000010000000000000004', archivedAt: '2026-12-04T10:01:00Z' } as WalEntry,
        { name: '000000010000000000000005', archivedAt: '2026-12-04T10:02:00Z' } as WalEntry,
      ],
    );
    expect(w).toBeNull();
  });
});
