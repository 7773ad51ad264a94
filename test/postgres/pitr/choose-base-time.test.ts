import { describe, expect, it } from 'vitest';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { chooseRecovery } from '../../../src/postgres/pitr/pitr-restore.ts';
import type { WalEntry } from '../../../src/postgres/pitr/wal-store.ts';

const bases = [{ id: 'b', startLsn: '0/2000028', timeline: 1, finishedAt: '2026-12-04T10:00:00Z', target: 'shop' } as BaseBackup];
const seg = (name: string, archivedAt: string) => ({ name, archivedAt }) as WalEntry;
// The window: 10:00 to 11:00, reaching the newest segment archived.
const wal = [seg('000000010000000000000002', '2026-12-04T10:01:00Z'), seg('000000010000000000000003', '2026-12-04T11:00:00Z')];
const refusal = (at: string, now: string) => {
  try {
    chooseRecovery(bases, wal, new Date(at), [], new Date(now));
  } catch (err) {
    return (err as { userMessage: string }).userMessage;
  }
  throw new Error('not refused');
};

describe('chooseRecovery: a time past the window', () => {
  it('says "try again in a minute" only within minutes of its end, and not for a time that has not come', () => {
    expect(refusal('2026-12-04T11:05:00Z', '2026-12-04T11:05:30Z')).toContain('The window grows as the WAL written since 2026-12-04T11:00:00.000Z is archived');
    // The QA case: a day and a half ahead.
    const future = refusal('2026-12-06T09:00:00Z', '2026-12-04T21:30:00Z');
    expect(future).toBe(
      '2026-12-06T09:00:00.000Z is outside what the archive holds: the recoverable window is 2026-12-04T10:00:00.000Z to 2026-12-04T11:00:00.000Z. It is in the future (it is 2026-12-04T21:30:00.000Z now): ask for a moment that has passed, or for `latest`, the newest commit archived now.',
    );
    // Within a minute of now (clocks differ a little) and of the window's end: still on its way.
    expect(refusal('2026-12-04T11:00:40Z', '2026-12-04T11:00:00Z')).toContain('try again in a minute');
    // Within ten minutes of the end but more than a minute ahead of now: in the future.
    expect(refusal('2026-12-04T11:08:00Z', '2026-12-04T11:01:00Z')).toMatch(/It is in the future \(it is 2026-12-04T11:01:00.000Z now\)/);
    // Passed, but long after the newest WAL archived: the stream is behind, not a minute away.
    const behind = refusal('2026-12-04T15:00:00Z', '2026-12-04T16:00:00Z');
    expect(behind).toContain(
      'Nothing written after 2026-12-04T11:00:00.000Z has been archived: the WAL stream is behind or down (`/backup status`, `pg-backup-bot check`); `latest` recovers to the newest commit archived now.',
    );
    expect(behind).not.toContain('try again in a minute');
  });

  it('uses the clock when not told the time', () => {
    expect(() => chooseRecovery(bases, wal, new Date(Date.now() + 36 * 3_600_000))).toThrow(/It is in the future \(it is \S+ now\)/);
  });
});
