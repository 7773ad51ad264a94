import { describe, expect, it } from 'vitest';
import { type RestoreTestVerdict, restoreTestFinished } from '../../src/notifications/restore-messages.ts';

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
