import { describe, expect, it } from 'vitest';
import { type RestoreTestVerdict, restoreTestFinished } from '../../src/notifications/restore-messages.ts';
import { restoreTestHistory } from '../../src/notifications/restore-history.ts';

/** The restore test's verdict claims nothing that did not happen: no RTO, level or dropped database for a test that stopped at its checksums. */
const req = { target: 'shop', backupId: 'shop-20261205T094959Z', jobId: 'rt-1', requestedBy: { source: 'slack', userId: 'U0ANA' } };
const shown = (v: RestoreTestVerdict) => JSON.stringify(restoreTestFinished(req, v, null).blocks);

describe('restoreTestFinished', () => {
  it('a test stopped by a failed checksum: no restore time, nothing restored or compared, no level claimed', () => {
    const text = shown({
      passed: false,
      problems: ['checksum mismatch: database.pgdump.zst.age (sha256 …)'],
      restoreMs: 0,
      durationMs: 420,
      restoredBytes: null,
      database: 'pgbb_rt_abc',
      dropped: true,
      checked: {
        checksums: [
          { file: 'database.pgdump.zst.age', ok: false },
          { file: 'globals.sql.zst.age', ok: true },
        ],
        tables: 0,
        objects: [],
        smokeQueries: [],
      },
    });
    expect(text).toContain('*Restore time (RTO)*\\nn/a (nothing restored)');
    expect(text).toContain('`pgbb_rt_abc` not left behind');
    expect(text).toContain('Checked: checksums of 2 files: 1 FAILED; nothing restored, nothing compared');
    expect(text).not.toMatch(/level counts/);
  });

  it('a test that ran: its restore time, the level that ran, the scratch database dropped', () => {
    const text = shown({
      passed: true,
      problems: [],
      restoreMs: 9_500,
      durationMs: 14_000,
      restoredBytes: 650 * 1024 ** 2,
      database: 'pgbb_rt_def',
      dropped: true,
      checked: {
        checksums: [{ file: 'database.pgdump.zst.age', ok: true }],
        tables: 12,
        objects: ['tables'],
        smokeQueries: [],
        level: 'content',
        archive: { compared: true, tables: 12, definitions: 214, largeObjects: 0, differing: { tables: 0, definitions: 0, largeObjects: 0 } },
      },
    });
    expect(text).toContain('*Restore time (RTO)*\\n9.5 s');
    expect(text).toContain('`pgbb_rt_def` dropped');
    expect(text).toContain('Checked: checksums of 1 file; 12 tables: content identical; 214 definitions identical; 1 kinds of objects counted (level content)');
  });
});

describe('restoreTestHistory: what is on record, and what is not shown', () => {
  const line = (i: number) => ({
    startedAt: new Date(Date.UTC(2026, 11, 1 + i)).toISOString(),
    backupId: `shop-202612${String(1 + i).padStart(2, '0')}T020000Z`,
    passed: true,
    restoreMs: 1000,
    restoredBytes: 1,
    problems: [],
    requestedBy: { source: 'schedule' as const },
  });
  it('says how many of how many it shows, that the older ones are kept, and where PITR tests are (QA: "21 on record" over 15 lines)', () => {
    const text = restoreTestHistory(
      Array.from({ length: 21 }, (_, i) => line(i)),
      'shop',
    );
    expect(text.split('\n')[0]).toBe('*Restore tests and full restores of shop* (the 15 newest of 21 on record):');
    expect(text.split('\n').filter((l) => l.startsWith('• '))).toHaveLength(15);
    expect(text).toContain('… and 6 older, kept as records beside the backups (`<target>/_records/`)');
    expect(text).toContain('Point-in-time restore tests are not listed here: `/backup health shop` shows the last one.');
    const few = restoreTestHistory([line(0), line(1)]);
    expect(few.split('\n')[0]).toBe('*Restore tests and full restores* (newest first, 2 on record):');
    expect(few).not.toContain('older');
  });
});
