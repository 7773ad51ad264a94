import { describe, expect, it } from 'vitest';
import { evaluateHealth, HEALTH_CONDITIONS, nagiosReport } from '../../src/health/index.ts';
import { keepSizeAdvice, walGapCondition, walSlotCondition } from '../../src/health/wal-conditions.ts';
import type { WalArchiveFacts, WalSlotFacts } from '../../src/health/wal-types.ts';

const archive = (over: Partial<WalArchiveFacts> = {}): WalArchiveFacts => ({
  baseBackups: 1,
  newestSegment: '000000010000000000000006',
  gaps: [],
  reachesNewest: true,
  window: { from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T14:00:05Z') },
  earlier: null,
  ...over,
});
const MB = 1024 ** 2;
const slot = (over: Partial<WalSlotFacts> = {}): WalSlotFacts => ({
  name: 'pgbb_shop',
  limitBytes: 64 * MB,
  exists: true,
  active: true,
  walStatus: 'reserved',
  retainedBytes: 2 * MB,
  safeWalSize: null,
  keepSizeMb: -1,
  ...over,
});

describe('wal-gap', () => {
  it('is ok with the window, to the second, when no segment is missing', () => {
    const r = walGapCondition('shop', archive());
    expect(r).toMatchObject({ condition: 'wal-gap', status: 'ok', severity: 'critical' });
    expect(r.evidence).toBe('no segment missing; recoverable to any moment from 2026-12-04 10:00:00 UTC to 2026-12-04 14:00:05 UTC');
  });

  it('fails critically after a promotion no base backup was taken since: the window stops at the switch (QA)', () => {
    const switched = { timeline: 2, segment: '000000020000000000000012', at: new Date('2026-12-04T14:10:00Z') };
    const r = walGapCondition('shop', archive({ reachesNewest: false, switched }));
    expect(r).toMatchObject({ status: 'failing', severity: 'critical' });
    expect(r.summary).toBe("The WAL archive of shop cannot recover past timeline 2's start: no base backup on it yet");
    expect(r.evidence).toMatch(/^The server moved to timeline 2 \(a promotion, or a restored copy made the primary\) at about 2026-12-04T14:10:00\.000Z/);
    expect(r.evidence).toContain('Take one now (`pg-backup-bot base-backup shop`, or `/backup now --physical shop`)');
    expect(r.evidence).toContain('Until then: recoverable to any moment from 2026-12-04 10:00:00 UTC to 2026-12-04 14:00:05 UTC');
  });

  it('fails critically on a gap no base backup has started after, naming the first missing segment and what to do', () => {
    const r = walGapCondition(
      'shop',
      archive({
        gaps: ['000000010000000000000003', '000000010000000000000004'],
        reachesNewest: false,
        window: { from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z') },
      }),
    );
    expect(r.status).toBe('failing');
    expect(r.quiet).toBeUndefined();
    expect(r.summary).toBe('The WAL archive of shop has a gap: segment 000000010000000000000003 is missing');
    expect(r.evidence).toContain('segment 000000010000000000000003 is missing from the WAL archive (and 1 more)');
    expect(r.evidence).toContain('Take a new base backup now (`pg-backup-bot base-backup shop`): the window starts again when it finishes');
    expect(r.evidence).toContain('Until then: recoverable to any moment from 2026-12-04 10:00:00 UTC to 2026-12-04 10:01:00 UTC');
  });

  it('clears once a base backup started after the gap, and still says what the gap cost', () => {
    const r = walGapCondition(
      'shop',
      archive({
        gaps: ['000000010000000000000003'],
        reachesNewest: true,
        window: { from: new Date('2026-12-04T13:00:00Z'), to: new Date('2026-12-04T14:00:00Z') },
        earlier: { from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z') },
      }),
    );
    expect(r.status).toBe('ok');
    expect(r.evidence).toBe(
      'no segment missing since the base backup the window starts from; recoverable to any moment from 2026-12-04 13:00:00 UTC to 2026-12-04 14:00:00 UTC, ' +
        'and from 2026-12-04 10:00:00 UTC to 2026-12-04 10:01:00 UTC before the gap; an older gap (segment 000000010000000000000003 missing) lies before it',
    );
  });

  it('with two gaps, names the one that ends the window and the one that ends the stretch before it', () => {
    const r = walGapCondition(
      'shop',
      archive({
        gaps: ['000000010000000000000003', '000000010000000000000007'],
        gap: '000000010000000000000007',
        reachesNewest: false,
        window: { from: new Date('2026-12-04T13:00:00Z'), to: new Date('2026-12-04T14:00:00Z') },
        earlier: { from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z'), gap: '000000010000000000000003' },
      }),
    );
    expect(r.summary).toBe('The WAL archive of shop has a gap: segment 000000010000000000000007 is missing');
    expect(r.evidence).toContain(
      'Until then: recoverable to any moment from 2026-12-04 13:00:00 UTC to 2026-12-04 14:00:00 UTC, and from 2026-12-04 10:00:00 UTC to 2026-12-04 10:01:00 UTC before the gap at segment 000000010000000000000003',
    );
  });

  it('says plainly that nothing is recoverable without a base backup, though no segment is missing', () => {
    const r = walGapCondition('shop', archive({ baseBackups: 0, window: null }));
    expect(r).toMatchObject({
      status: 'ok',
      evidence: 'no segment missing; nothing recoverable yet: no base backup (take one: `pg-backup-bot base-backup shop`)',
    });
  });

  it('fails on an index it cannot read, and is not judged where the archive is not kept', () => {
    expect(walGapCondition('shop', archive({ unreadable: 'Unexpected token' })).status).toBe('failing');
    expect(walGapCondition('shop', archive({ notKept: 'S3 primary' }))).toMatchObject({ status: 'ok', evidence: 'not checked: S3 primary' });
  });
});

describe('wal-slot', () => {
  it('is ok under the limit, and recommends max_slot_wal_keep_size while it is unlimited', () => {
    const r = walSlotCondition('shop', slot());
    expect(r.status).toBe('ok');
    expect(r.evidence).toContain('slot pgbb_shop holds 2.0 MB of WAL (limit 64.0 MB); a receiver is connected');
    expect(r.evidence).toContain("`ALTER SYSTEM SET max_slot_wal_keep_size = '256MB'; SELECT pg_reload_conf();`");
    expect(walSlotCondition('shop', slot({ keepSizeMb: 1024, safeWalSize: 900 * MB })).evidence).toContain('gives the slot up after 900 MB more WAL');
  });

  it('fails over the limit, naming both figures', () => {
    const r = walSlotCondition('shop', slot({ retainedBytes: 80 * MB, active: false }));
    expect(r).toMatchObject({ status: 'failing', severity: 'critical', value: 80 * MB });
    expect(r.evidence).toMatch(/^slot pgbb_shop holds 80.0 MB of WAL on the server, over the limit of 64.0 MB \(pitr.slotMaxBytes\); no receiver is connected/);
  });

  it('fails when the server is about to give up WAL, has given it up, or the slot is gone', () => {
    expect(walSlotCondition('shop', slot({ walStatus: 'unreserved' })).summary).toBe('The replication slot pgbb_shop of shop is about to lose WAL');
    const lost = walSlotCondition('shop', slot({ walStatus: 'lost', keepSizeMb: 1024 }));
    expect(lost.status).toBe('failing');
    expect(lost.evidence).toContain('the archive has a gap');
    expect(lost.evidence).toContain("SELECT pg_drop_replication_slot('pgbb_shop')");
    expect(lost.evidence).toContain('then take a new base backup (`pg-backup-bot base-backup shop`)');
    expect(walSlotCondition('shop', slot({ exists: false, retainedBytes: null })).summary).toBe('The replication slot pgbb_shop of shop does not exist');
    // A new target, nothing archived yet: its worker has not made the slot yet; said, never paged (QA: the demo's start).
    const fresh = walSlotCondition('shop', slot({ exists: false, retainedBytes: null }), false);
    expect(fresh).toMatchObject({ status: 'failing', quiet: true, summary: 'The replication slot pgbb_shop of shop is not created yet' });
  });

  it('shows a server it could not ask without paging for it (a warning to Nagios too)', () => {
    const r = walSlotCondition('shop', { name: 'pgbb_shop', limitBytes: MB * 64, error: 'connect ECONNREFUSED 127.0.0.1:1' });
    expect(r).toMatchObject({ status: 'failing', quiet: true });
    expect(r.evidence).toBe('could not read slot pgbb_shop on the server: connect ECONNREFUSED 127.0.0.1:1');
    expect(nagiosReport([{ target: 'shop', results: [r] }])).toEqual({
      exitCode: 1,
      lines: ['WARNING shop wal-slot: could not read slot pgbb_shop on the server: connect ECONNREFUSED 127.0.0.1:1'],
    });
  });

  it('advises four times the limit', () => {
    expect(keepSizeAdvice(8 * 1024 ** 3)).toBe('32GB');
    expect(keepSizeAdvice(64 * MB)).toBe('256MB');
  });
});

describe('evaluateHealth with a pitr target', () => {
  it('reports wal-gap and wal-slot after the other conditions, in HEALTH_CONDITIONS order', () => {
    const results = evaluateHealth({
      target: 'shop',
      now: new Date('2026-12-04T14:01:00Z'),
      backups: [],
      running: [],
      lastBackupRun: null,
      lastRestoreTest: null,
      disk: null,
      wal: { state: { receiver: 'up', since: '2026-12-04T09:00:00Z' } },
      walHealth: { archive: archive(), slot: slot() },
    });
    const names = results.map((r) => r.condition);
    expect(names.slice(-4)).toEqual(['wal-stream', 'wal-gap', 'wal-slot', 'rpo']);
    expect([...names].sort((a, b) => HEALTH_CONDITIONS.indexOf(a) - HEALTH_CONDITIONS.indexOf(b))).toEqual(names);
  });
});

describe('a PITR target whose WAL stream no worker has started yet', () => {
  const now = new Date('2026-12-04T14:00:00Z');
  const judge = (firstSeenAgoMs: number) =>
    evaluateHealth({
      target: 'shop',
      now,
      backups: [],
      running: [],
      lastBackupRun: null,
      lastRestoreTest: null,
      disk: null,
      encrypted: null,
      driftAck: null,
      wal: { state: null, firstSeen: new Date(now.getTime() - firstSeenAgoMs) },
      walHealth: { archive: archive({ newestSegment: null, window: null, baseBackups: 0 }), slot: slot({ exists: false, retainedBytes: null, active: false }) },
    }).filter((r) => r.condition === 'wal-stream' || r.condition === 'wal-slot' || r.condition === 'rpo');

  it('is not paged in its first five minutes (a fresh install, a target just added): stream, missing slot and RPO wait', () => {
    const results = judge(60_000);
    expect(results.map((r) => [r.condition, r.status])).toEqual([
      ['wal-stream', 'ok'],
      ['wal-slot', 'ok'],
      ['rpo', 'ok'],
    ]);
    for (const r of results) {
      expect(r.summary).toMatch(/ \(starting\)$/);
      expect(r.evidence).toMatch(
        /\(not judged yet: no worker has started the WAL stream, and the target was first seen .+, within the 5-minute start-up grace\)$/,
      );
    }
  });

  it('is judged after them: all three fail, critical', () => {
    expect(judge(6 * 60_000).map((r) => [r.condition, r.status, r.severity])).toEqual([
      ['wal-stream', 'failing', 'critical'],
      ['wal-slot', 'failing', 'critical'],
      ['rpo', 'failing', 'critical'],
    ]);
  });
});
