import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn, segmentEndLsn, segmentStartLsn } from '../../../src/postgres/pitr/lsn.ts';
import { recordEnd } from '../../../src/postgres/pitr/position-sampler.ts';
import { backlogBefore } from '../../../src/postgres/pitr/partial-archiver.ts';
import { partialInterval } from '../../../src/postgres/pitr/rpo.ts';
import { MAX_SAMPLES, RpoTracker } from '../../../src/postgres/pitr/rpo.ts';
import { inheritedRpo, previousSamples } from '../../../src/workers/wal-state-write.ts';

const T0 = Date.parse('2026-12-04T12:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000);

describe('WAL positions', () => {
  it('reads and writes LSNs as PostgreSQL does, and places segments on them', () => {
    expect(parseLsn('0/3000148')).toBe(0x3000148n);
    expect(parseLsn('1A/FF000000')).toBe((0x1an << 32n) | 0xff000000n);
    expect(formatLsn(parseLsn('1A/FF000028'))).toBe('1A/FF000028');
    expect(() => parseLsn('3000148')).toThrow(/not a WAL position/);
    // Segment 3 of log file 0 on timeline 1 holds 0/3000000 … 0/3FFFFFF; timelines do not move positions.
    expect(formatLsn(segmentStartLsn('000000010000000000000003'))).toBe('0/3000000');
    expect(formatLsn(segmentEndLsn('0000000200000000000000FF'))).toBe('1/0');
    expect(formatLsn(segmentStartLsn('00000001000000020000000A'))).toBe('2/A000000');
  });
});

describe('RpoTracker', () => {
  it('is 0 when the archive holds every position sampled, and keeps only the newest sample then', () => {
    const t = new RpoTracker();
    for (let i = 0; i < 5; i++) t.add({ at: at(i * 2), lsn: 100n + BigInt(i) });
    expect(t.read(at(10), 104n)).toEqual({ rpoMs: 0 });
    expect(t.size).toBe(1);
  });

  it('reads the RPO by the worker’s clock and what WAL holds by the server’s, when the two differ (review)', () => {
    // The server's clock 60 s ahead of the worker's.
    const t = new RpoTracker();
    t.add({ at: at(60), seenAt: at(0), lsn: 100n });
    t.add({ at: at(62), seenAt: at(2), lsn: 200n });
    expect(t.coveredAt(150n)).toEqual(at(60));
    expect(t.skewMs()).toBe(60_000);
    // The worker's "now" against the worker's times: 10 s behind since 0 s, not 0 (it read -50 s, clamped).
    expect(t.read(at(10), 100n)).toEqual({ rpoMs: 10_000, behindSince: at(0) });
  });

  it('counts from the last sample the archive covers: the change beyond it came after that sample', () => {
    const t = new RpoTracker();
    t.add({ at: at(0), lsn: 100n });
    t.add({ at: at(2), lsn: 100n });
    t.add({ at: at(4), lsn: 200n });
    t.add({ at: at(6), lsn: 300n });
    // The archive holds up to 100: the write to 200 happened after 2 s, so at 10 s up to 8 s of it would be lost.
    expect(t.read(at(10), 100n)).toEqual({ rpoMs: 8000, behindSince: at(2) });
    // The archive reaches 200: the write to 300 came after the 4 s sample.
    expect(t.read(at(11), 250n)).toEqual({ rpoMs: 7000, behindSince: at(4) });
    expect(t.read(at(12), 300n)).toEqual({ rpoMs: 0 });
  });

  it('with every sample beyond the archive, counts from the oldest (all it knows)', () => {
    const t = new RpoTracker();
    t.add({ at: at(0), lsn: 500n });
    t.add({ at: at(2), lsn: 600n });
    expect(t.read(at(5), 100n)).toEqual({ rpoMs: 5000, behindSince: at(0) });
  });

  it('stays bounded while the archive is stopped for days, keeping the oldest sample that decides the RPO', () => {
    const t = new RpoTracker();
    const n = MAX_SAMPLES * 3;
    for (let i = 0; i < n; i++) t.add({ at: at(i * 2), lsn: 1000n + BigInt(i) });
    expect(t.size).toBeLessThanOrEqual(MAX_SAMPLES);
    expect(t.read(at(n * 2), 999n)).toEqual({ rpoMs: n * 2000, behindSince: at(0) });
    // Once the archive catches up part way, the RPO counts from a sample at or below it, never after it.
    const half = 1000n + BigInt(n / 2);
    const r = t.read(at(n * 2), half);
    expect(r.behindSince?.getTime()).toBeLessThanOrEqual(at(n).getTime());
    expect(r.rpoMs).toBeGreaterThanOrEqual(n * 1000);
  });
});

describe('partialInterval', () => {
  it('is a quarter of the objective, at most 30 s, at least a second', () => {
    expect(partialInterval(3600)).toBe(30_000);
    expect(partialInterval(120)).toBe(30_000);
    expect(partialInterval(60)).toBe(15_000);
    expect(partialInterval(10)).toBe(2500);
    expect(partialInterval(2)).toBe(1000);
  });
});

describe('RpoTracker.coveredAt: how far in time WAL up to an LSN holds every change', () => {
  it('is the newest sample at or below it, never a later one (QA: a frozen receiver’s snapshot stretched the window)', () => {
    const t = new RpoTracker();
    const at = (s: number) => new Date(Date.UTC(2026, 11, 6, 10, 4, s));
    // The server at 100 until 10:04:50, then writes on (the receiver froze having flushed 100).
    for (const [s, lsn] of [
      [46, 90n],
      [48, 100n],
      [50, 100n],
      [52, 140n],
      [54, 180n],
    ] as const)
      t.add({ at: at(s), lsn });
    expect(t.coveredAt(100n)).toEqual(at(50));
    expect(t.coveredAt(180n)).toEqual(at(54));
    expect(t.coveredAt(95n)).toEqual(at(46));
    expect(t.coveredAt(50n)).toBeNull();
  });
});

describe('backlogBefore: no partial snapshot while completed segments before it wait in the spool', () => {
  it('is true only for completed segments older than the one being written (QA: a snapshot after a backlog read as a gap)', () => {
    const partial = '000000010000000000000024.partial';
    expect(backlogBefore(['000000010000000000000014', '000000010000000000000015', partial], partial)).toBe(true);
    expect(backlogBefore([partial], partial)).toBe(false);
    expect(backlogBefore(['00000002.history', partial], partial)).toBe(false);
    expect(backlogBefore(['000000010000000000000025', partial], partial)).toBe(false);
  });
});

describe('recordEnd: the insert position as the end of the last record', () => {
  it('steps back over a page header PostgreSQL points past at a page’s or segment’s start, and nowhere else', () => {
    const seg = 16 * 1024 * 1024;
    expect(recordEnd(0x3000028n, 8192, seg)).toBe(0x3000000n);
    expect(recordEnd(0x3002018n, 8192, seg)).toBe(0x3002000n);
    expect(recordEnd(0x3002060n, 8192, seg)).toBe(0x3002060n);
    expect(recordEnd(0x3000000n, 8192, seg)).toBe(0x3000000n);
  });
});

describe('the RPO across a worker restart', () => {
  // The previous holder's last state: behind since 11:48:26 (WAL past 0/3000000 not archived), last measured 11:48:50.
  const stored = {
    receiver: 'down' as const,
    since: '2026-12-07T11:48:50.000Z',
    rpoMeasuredAt: '2026-12-07T11:48:50.000Z',
    rpoBehindSince: '2026-12-07T11:48:26.000Z',
    archivedLsn: '0/3000000',
    currentLsn: '0/3400000',
    clockSkewMs: '0',
  };

  it('counts on from what the previous holder measured, not from its own first sample (QA: 42 s said, about 104 s true)', () => {
    const now = new Date('2026-12-07T11:50:10Z');
    const seeded = new RpoTracker();
    seeded.seed(previousSamples(stored, now, 7 * 86_400_000));
    const fresh = new RpoTracker();
    for (const t of [seeded, fresh]) t.add({ at: new Date('2026-12-07T11:49:28Z'), lsn: parseLsn('0/9800000') });
    expect(fresh.read(now, parseLsn('0/3000000')).rpoMs).toBe(42_000);
    expect(seeded.read(now, parseLsn('0/3000000'))).toEqual({ rpoMs: 104_000, behindSince: new Date('2026-12-07T11:48:26Z') });
  });

  it('caught up at its last measurement: WAL past the archive came after it, at the latest', () => {
    const now = new Date('2026-12-07T11:50:10Z');
    const { rpoBehindSince: _no, ...caughtUp } = { ...stored, currentLsn: '0/3000000' };
    const t = new RpoTracker();
    t.seed(previousSamples(caughtUp, now, 7 * 86_400_000));
    t.add({ at: new Date('2026-12-07T11:49:28Z'), lsn: parseLsn('0/3100000') });
    expect(t.read(now, parseLsn('0/3000000'))).toEqual({ rpoMs: 80_000, behindSince: new Date('2026-12-07T11:48:50Z') });
    // Archived meanwhile: caught up, 0.
    expect(t.read(now, parseLsn('0/3100000')).rpoMs).toBe(0);
  });

  it('a seed from another history (a failover to a standby that was behind) goes at the first sample behind it', () => {
    const now = new Date('2026-12-07T11:50:10Z');
    const t = new RpoTracker();
    t.seed(previousSamples(stored, now, 7 * 86_400_000));
    // The promoted server is at 0/2800000, behind both seeds: they speak of the old primary's WAL.
    t.add({ at: new Date('2026-12-07T11:49:28Z'), lsn: parseLsn('0/2800000') });
    expect(t.size).toBe(1);
    expect(t.read(now, parseLsn('0/2800000')).rpoMs).toBe(0);
  });

  it('keeps the previous measurement in the state until this holder has its own', () => {
    expect(inheritedRpo({ ...stored, rpoError: 'x', holder: 'h' })).toEqual({
      rpoMeasuredAt: stored.rpoMeasuredAt,
      rpoBehindSince: stored.rpoBehindSince,
      currentLsn: stored.currentLsn,
      archivedLsn: stored.archivedLsn,
      clockSkewMs: '0',
    });
    expect(inheritedRpo({ receiver: 'up', since: stored.since })).toEqual({});
  });

  it('starts afresh from a state with no measurement, or older than the limit', () => {
    const now = new Date('2026-12-15T11:50:10Z');
    expect(previousSamples(stored, now, 7 * 86_400_000)).toEqual([]);
    expect(previousSamples({ receiver: 'up', since: stored.since }, now, 7 * 86_400_000)).toEqual([]);
    expect(previousSamples(null, now, 7 * 86_400_000)).toEqual([]);
  });
});
