import { describe, expect, it } from 'vitest';
import { pitrTestError, pitrTestFinished, type PitrTestVerdict } from '../../src/notifications/pitr-test-messages.ts';

const req = { target: 'shop', asked: 'latest', jobId: 'pitr-test-shop-1', requestedBy: { source: 'slack', userId: 'U1', userName: 'ana' } };
const checks = [
  { name: 'WAL archive', ok: true, detail: '3 segment(s) fetched' },
  { name: 'base backup (pg_verifybackup)', ok: true, detail: 'every file matches' },
  { name: 'recovery reached its target', ok: true, detail: 'the server says: "recovery stopping before commit of transaction 7"' },
  { name: 'pg_amcheck, every database', ok: true, detail: 'clean' },
  { name: 'exact point (markers)', ok: true as boolean | null, detail: '4 marker(s) written before the target present, 1 written after it absent' },
];
const verdict = (over: Partial<PitrTestVerdict> = {}): PitrTestVerdict => ({
  at: '2026-12-04T10:00:00.000Z',
  baseId: 'shop-base-20261204T090000Z',
  passed: true,
  checks,
  phasesMs: { fetch: 4000, replay: 9000, checks: 2000 },
  rtoMs: 15000,
  wal: { segments: 3, bytes: 3 * 16 * 1024 * 1024 },
  scratchRemoved: true,
  ...over,
});

describe('PITR restore-test messages', () => {
  it('a pass names every check and the RTO by phase', () => {
    const m = pitrTestFinished(req, verdict(), null);
    const all = JSON.stringify(m.blocks);
    expect(m.text).toBe('PITR restore test of shop passed (recovered to 2026-12-04T10:00:00.000Z)');
    for (const c of checks) expect(all).toContain(`:white_check_mark: *${c.name}*:`);
    expect(all).toContain('*RTO (fetch + replay + checks)*\\n15.0 s');
    expect(all).toContain('*Replay*\\n9.0 s');
    expect(all).toContain('scratch cluster removed');
  });

  it('a pass whose exact-point check did not run says so in its first line, never a plain pass', () => {
    const notRun = checks.map((c) =>
      c.name.startsWith('exact') ? { ...c, ok: null, detail: 'not run: markers are off for this target (pitr.markers: false)' } : c,
    );
    const head = JSON.stringify(pitrTestFinished(req, verdict({ checks: notRun }), null).blocks?.[0]);
    expect(head).toContain(
      ':warning: PITR restore test of *shop* to the latest moment passed, but one check did not run (exact point (markers): markers are off',
    );
  });

  it('a failure leads with the failed check; one that could not run says why', () => {
    const failed = checks.map((c) =>
      c.name.startsWith('recovery') ? { ...c, ok: false, detail: 'PostgreSQL: "recovery ended before configured recovery target was reached"' } : c,
    );
    expect(pitrTestFinished(req, verdict({ checks: failed, passed: false }), 'PagerDuty paged').text).toBe(
      'PITR restore test of shop FAILED: recovery reached its target: PostgreSQL: "recovery ended before configured recovery target was reached"',
    );
    expect(pitrTestError(req, 'PostgreSQL 16 is not installed', null).text).toBe('PITR restore test of shop could not run: PostgreSQL 16 is not installed');
  });
});
