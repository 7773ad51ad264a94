import { describe, expect, it } from 'vitest';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import type { WalEntry } from '../../../src/postgres/pitr/wal-store.ts';
import { recoverableWindow, segmentOf, segmentPosition } from '../../../src/postgres/pitr/window.ts';

const base = (startLsn: string, finishedAt: string, id = 'b1') => ({ id, startLsn, endLsn: startLsn, timeline: 1, finishedAt }) as BaseBackup;
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
    expect(w).toEqual({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T11:00:00Z'),
      gaps: [],
      usable: [{ id: 'b1', from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T11:00:00Z') }],
    });
  });

  it('ends before a missing segment, and names it', () => {
    const w = recoverableWindow(
      [base('0/2000028', '2026-12-04T10:00:00Z')],
      [seg('000000010000000000000002', '2026-12-04T10:01:00Z'), seg('000000010000000000000004', '2026-12-04T12:00:00Z')],
    );
    expect(w).toMatchObject({ from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z'), gaps: ['000000010000000000000003'] });
  });

  it('is nothing when the stream began after the base backup (its first segment was never archived)', () => {
    const w = recoverableWindow(
      [base('0/3000028', '2026-12-04T10:00:00Z')],
      [seg('000000010000000000000004', '2026-12-04T10:01:00Z'), seg('000000010000000000000005', '2026-12-04T10:02:00Z')],
    );
    expect(w).toBeNull();
  });

  it('starts again after a gap at a newer base backup, and still names the gap', () => {
    const w = recoverableWindow(
      [base('0/2000028', '2026-12-04T10:00:00Z', 'old'), base('0/5000028', '2026-12-04T12:00:00Z', 'new')],
      [
        seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
        seg('000000010000000000000005', '2026-12-04T12:01:00Z'),
        seg('000000010000000000000006', '2026-12-04T13:00:00Z'),
      ],
    );
    expect(w).toEqual({
      from: new Date('2026-12-04T12:00:00Z'),
      to: new Date('2026-12-04T13:00:00Z'),
      gaps: ['000000010000000000000003', '000000010000000000000004'],
      usable: [
        { id: 'old', from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z') },
        { id: 'new', from: new Date('2026-12-04T12:00:00Z'), to: new Date('2026-12-04T13:00:00Z') },
      ],
    });
  });

  it('is nothing without a base backup or WAL after it', () => {
    expect(recoverableWindow([], [seg('000000010000000000000002', '2026-12-04T10:01:00Z')])).toBeNull();
    expect(recoverableWindow([base('0/2000028', '2026-12-04T10:00:00Z')], [])).toBeNull();
  });
});
