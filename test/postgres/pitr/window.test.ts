import { describe, expect, it } from 'vitest';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import type { WalEntry } from '../../../src/postgres/pitr/wal-store.ts';
import { chooseRecovery } from '../../../src/postgres/pitr/pitr-restore.ts';
import { consistentBy, rangeAt, recoverableWindow, segmentOf, segmentPosition, shownRange, walGaps, windowAlong } from '../../../src/postgres/pitr/window.ts';

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
    expect(w).toEqual({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T11:00:00Z'),
      opens: expect.objectContaining({ id: 'b' }),
      timeline: 1,
      gaps: [],
      reachesNewest: true,
    });
  });

  it('refuses a moment just past its end with when it will be there, and one before its start with the logical backups (QA)', () => {
    const bases = [{ ...base('0/2000028', '2026-12-04T10:00:00Z'), target: 'shop' }];
    const wal = [seg('000000010000000000000002', '2026-12-04T10:01:00Z'), seg('000000010000000000000003', '2026-12-04T11:00:00Z')];
    expect(() => chooseRecovery(bases, wal, new Date('2026-12-04T11:00:20Z'))).toThrow(
      'The window grows as the WAL written since 2026-12-04T11:00:00.000Z is archived (a segment, or a snapshot of the one being written: as a rule seconds, at most 30 s, after the next write): try again in a minute, or ask for `latest`, the newest commit archived now.',
    );
    expect(() => chooseRecovery(bases, wal, new Date('2026-12-04T09:00:00Z'))).toThrow(
      'For a moment outside it, a logical backup may serve: `/backup list shop`',
    );
  });

  it('after a promotion whose history was archived without its record, ends where the base backup’s timeline does until a base backup is taken on the new one (QA)', () => {
    const tl1 = [{ ...base('0/2000028', '2026-12-04T10:00:00Z'), target: 'shop' }];
    const wal = [
      seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
      { ...seg('000000010000000000000003', '2026-12-04T10:20:00Z'), partial: true },
      seg('00000002.history', '2026-12-04T10:21:00Z'),
      seg('000000020000000000000003', '2026-12-04T10:30:00Z'),
      seg('000000020000000000000004', '2026-12-04T10:40:00Z'),
    ];
    const w = recoverableWindow(tl1, wal);
    // Before: the window read on across the switch, to 10:40, which recovery from a timeline-1 base backup never replays.
    expect(w).toMatchObject({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T10:20:00Z'),
      gaps: [],
      reachesNewest: false,
      switched: { timeline: 2, segment: '000000020000000000000003', at: new Date('2026-12-04T10:30:00Z') },
    });
    // A time after the switch is refused with what to do, not "try again in a minute" nor recovered short.
    expect(() => chooseRecovery(tl1, wal, new Date('2026-12-04T10:35:00Z'))).toThrow(
      /outside what the archive holds: the recoverable window is .*\. The server moved to timeline 2 .* none was taken on timeline 2 yet\. Take one now \(`pg-backup-bot base-backup shop`/,
    );
    expect(chooseRecovery(tl1, wal, new Date('2026-12-04T10:10:00Z')).base.id).toBe('b');
    // A base backup on the new timeline: the window is the new timeline's, to its newest segment.
    const tl2 = { ...base('0/3800028', '2026-12-04T10:32:00Z', 'b2'), timeline: 2, target: 'shop' };
    expect(recoverableWindow([...tl1, tl2], wal)).toMatchObject({
      from: new Date('2026-12-04T10:32:00Z'),
      to: new Date('2026-12-04T10:40:00Z'),
      opens: expect.objectContaining({ id: 'b2' }),
      reachesNewest: true,
    });
    expect(recoverableWindow([...tl1, tl2], wal)?.switched).toBeUndefined();
    // And the moments before the promotion stay recoverable, along timeline 1, for as long as its WAL is kept (e2e
    // promotion test: every one of them was refused once the new timeline's base backup existed).
    expect(recoverableWindow([...tl1, tl2], wal)?.priorTimeline).toEqual({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T10:20:00Z'),
      opens: expect.objectContaining({ id: 'b' }),
      timeline: 1,
    });
    expect(chooseRecovery([...tl1, tl2], wal, new Date('2026-12-04T10:10:00Z')).base.id).toBe('b');
    expect(chooseRecovery([...tl1, tl2], wal, new Date('2026-12-04T10:35:00Z')).base.id).toBe('b2');
    // Between the two (after timeline 1's last WAL, before the new base backup's end): refused, both named.
    expect(() => chooseRecovery([...tl1, tl2], wal, new Date('2026-12-04T10:25:00Z'))).toThrow(
      'the recoverable window is 2026-12-04T10:32:00.000Z to 2026-12-04T10:40:00.000Z, and 2026-12-04T10:00:00.000Z to 2026-12-04T10:20:00.000Z on timeline 1, before the promotion.',
    );
  });

  it('after a promotion whose history file is archived, follows it from the old timeline’s base backup (lane.ts)', () => {
    const b = { ...base('0/2000028', '2026-12-04T10:00:00Z'), endLsn: '0/2000100', target: 'shop' };
    const history = { ...seg('00000002.history', '2026-12-04T10:21:00Z'), forks: [{ timeline: 1, switchLsn: '0/3800000' }] };
    const wal = [
      seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
      // The old timeline's copy of the switch segment: recovery along timeline 2 reads timeline 2's (it holds the same
      // WAL up to the switch), so it neither ends nor opens anything here.
      { ...seg('000000010000000000000003', '2026-12-04T10:20:00Z'), partial: true },
      history,
      seg('000000020000000000000003', '2026-12-04T10:30:00Z'),
      seg('000000020000000000000004', '2026-12-04T10:40:00Z'),
    ];
    const w = recoverableWindow([b], wal);
    expect(w).toEqual({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T10:40:00Z'),
      opens: b,
      timeline: 2,
      gaps: [],
      reachesNewest: true,
    });
    // Recovered along timeline 2 from timeline 1's base backup, before the switch and after it.
    expect(chooseRecovery([b], wal, new Date('2026-12-04T10:35:00Z'))).toEqual({ base: b, timeline: 2 });
    expect(chooseRecovery([b], wal, new Date('2026-12-04T10:10:00Z'))).toEqual({ base: b, timeline: 2 });
    // Along timeline 1, asked for (restore-pitr --timeline=1: an old primary's commits the promoted server never got):
    // its own window, to its newest WAL, past the switch.
    expect(windowAlong([b], wal, 1)).toMatchObject({ timeline: 1, to: new Date('2026-12-04T10:20:00Z') });
    expect(chooseRecovery([b], wal, new Date('2026-12-04T10:15:00Z'), [], new Date(), 1)).toEqual({ base: b, timeline: 1 });
    // A timeline with no window is refused, naming the timelines that have one, with their windows.
    expect(() => chooseRecovery([b], wal, new Date('2026-12-04T10:15:00Z'), [], new Date(), 3)).toThrow(
      'Nothing can be recovered along timeline 3: the archive holds no WAL of it. ' +
        'Recoverable along timeline 1 (2026-12-04T10:00:00.000Z to 2026-12-04T10:20:00.000Z) and 2 (2026-12-04T10:00:00.000Z to 2026-12-04T10:40:00.000Z).',
    );
    expect(() => chooseRecovery([], wal, new Date('2026-12-04T10:15:00Z'), [], new Date(), 3)).toThrow(
      'The archive holds WAL of timelines 1 and 2, and no window along any of them.',
    );
    // A timeline whose WAL is there but that no base backup reaches: said so, not "no WAL of it".
    expect(() => chooseRecovery([], wal, new Date('2026-12-04T10:15:00Z'), [], new Date(), 2)).toThrow(
      'Nothing can be recovered along timeline 2: no base backup taken on it, or on a timeline before it whose switch its archived history file records, reaches its WAL.',
    );
    // A base backup on timeline 2 since: the newest one finished by the moment, along the same lane; no stretch of
    // timeline 1 is listed apart, the lane reaches back as far.
    const b2 = { ...base('0/4000028', '2026-12-04T10:35:00Z', 'b2'), endLsn: '0/4000100', timeline: 2, target: 'shop' };
    expect(recoverableWindow([b, b2], wal)).toMatchObject({ from: new Date('2026-12-04T10:00:00Z'), opens: b, timeline: 2 });
    expect(recoverableWindow([b, b2], wal)?.priorTimeline).toBeUndefined();
    expect(chooseRecovery([b, b2], wal, new Date('2026-12-04T10:38:00Z'))).toEqual({ base: b2, timeline: 2 });
    expect(chooseRecovery([b, b2], wal, new Date('2026-12-04T10:25:00Z'))).toEqual({ base: b, timeline: 2 });

    // A segment of timeline 1 missing before the switch: a gap on the lane, named on the timeline it belongs to.
    const lost = wal.filter((e) => e.name !== '000000010000000000000002');
    const early = { ...base('0/1000028', '2026-12-04T09:00:00Z', 'early'), endLsn: '0/1000100', target: 'shop' };
    const withGap = recoverableWindow([early], [seg('000000010000000000000001', '2026-12-04T09:01:00Z'), ...lost]);
    expect(withGap).toMatchObject({ to: new Date('2026-12-04T09:01:00Z'), gaps: ['000000010000000000000002'], reachesNewest: false, timeline: 2 });
    expect(walGaps([early], [seg('000000010000000000000001', '2026-12-04T09:01:00Z'), ...lost])).toEqual(['000000010000000000000002']);

    // A base backup that ended past the switch (the old primary's, after the promotion) is on a branch the lane does
    // not follow: the switch cannot be crossed from it.
    const late = { ...b, endLsn: '0/3900000' };
    expect(recoverableWindow([late], wal)).toMatchObject({ timeline: 1, switched: { timeline: 2, segment: '000000020000000000000003' } });
  });

  it('after a crash failover, counts the new timeline only from the end of the old one’s WAL past the switch (review, QA)', () => {
    const b = { ...base('0/2000028', '2026-12-04T10:00:00Z'), endLsn: '0/2000100', target: 'shop' };
    const wal = [
      seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
      // The old primary went on past the switch at 0/3800000: its segment 3 completed, 4 written into.
      seg('000000010000000000000003', '2026-12-04T10:20:00Z'),
      { ...seg('000000010000000000000004', '2026-12-04T10:22:00Z'), partial: true, walEnd: '0/4000800' },
      { ...seg('00000002.history', '2026-12-04T10:25:00Z'), forks: [{ timeline: 1, switchLsn: '0/3800000' }] },
      seg('000000020000000000000003', '2026-12-04T10:30:00Z'),
      seg('000000020000000000000004', '2026-12-04T10:40:00Z'),
    ];
    const w = recoverableWindow([b], wal);
    // Along timeline 2 from the end of the old primary's WAL; before it, along timeline 1, which holds what it really had.
    expect(w).toMatchObject({ from: new Date('2026-12-04T10:22:00Z'), to: new Date('2026-12-04T10:40:00Z'), timeline: 2, opens: b });
    expect(w?.priorTimeline).toEqual({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T10:22:00Z'),
      opens: b,
      timeline: 1,
      forkedAt: '0/3800000',
    });
    expect(chooseRecovery([b], wal, new Date('2026-12-04T10:21:00Z'))).toEqual({ base: b, timeline: 1 });
    expect(chooseRecovery([b], wal, new Date('2026-12-04T10:35:00Z'))).toEqual({ base: b, timeline: 2 });
    // After the old primary's last WAL, before the history file came (the receiver reached the promoted server late):
    // the promoted server's, reachable by time (QA: only `latest` reached its first commits).
    expect(chooseRecovery([b], wal, new Date('2026-12-04T10:23:00Z'))).toEqual({ base: b, timeline: 2 });
    // A snapshot of the switch's segment that ends at the switch (a planned promotion) diverges from nothing.
    const planned = [...wal.slice(0, 1), { ...seg('000000010000000000000003', '2026-12-04T10:20:00Z'), partial: true, walEnd: '0/3800000' }, ...wal.slice(3)];
    expect(recoverableWindow([b], planned)).toMatchObject({ from: new Date('2026-12-04T10:00:00Z'), timeline: 2 });
    expect(recoverableWindow([b], planned)?.priorTimeline).toBeUndefined();
  });

  it('ends before a missing segment, and names it', () => {
    const w = recoverableWindow(
      [base('0/2000028', '2026-12-04T10:00:00Z')],
      [seg('000000010000000000000002', '2026-12-04T10:01:00Z'), seg('000000010000000000000004', '2026-12-04T12:00:00Z')],
    );
    expect(w).toEqual({
      from: new Date('2026-12-04T10:00:00Z'),
      to: new Date('2026-12-04T10:01:00Z'),
      opens: expect.objectContaining({ id: 'b' }),
      timeline: 1,
      gaps: ['000000010000000000000003'],
      gap: '000000010000000000000003',
      reachesNewest: false,
    });
  });

  it('is nothing without a base backup or WAL after it', () => {
    expect(recoverableWindow([], [seg('000000010000000000000002', '2026-12-04T10:01:00Z')])).toBeNull();
    expect(recoverableWindow([base('0/2000028', '2026-12-04T10:00:00Z')], [])).toBeNull();
  });

  /** An old base backup, a gap at segment 3, a new base backup after it, WAL to segment 6. */
  const acrossGap = () => ({
    bases: [base('0/2000028', '2026-12-04T10:00:00Z', 'old'), base('0/5000028', '2026-12-04T13:00:00Z', 'new')],
    wal: [
      seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
      seg('000000010000000000000004', '2026-12-04T12:00:00Z'),
      seg('000000010000000000000005', '2026-12-04T13:05:00Z'),
      seg('000000010000000000000006', '2026-12-04T14:00:00Z'),
    ],
  });

  it('starts again after a base backup taken since the gap, and keeps the stretch before it', () => {
    const { bases, wal } = acrossGap();
    const w = recoverableWindow(bases, wal);
    expect(w).toEqual({
      from: new Date('2026-12-04T13:00:00Z'),
      to: new Date('2026-12-04T14:00:00Z'),
      opens: bases[1],
      timeline: 1,
      gaps: ['000000010000000000000003'],
      gap: '000000010000000000000003',
      reachesNewest: true,
      earlier: { from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z'), opens: bases[0], timeline: 1, gap: '000000010000000000000003' },
    });
    // A moment inside the gap's shadow is not recoverable; either side of it is.
    expect(rangeAt(w as NonNullable<typeof w>, new Date('2026-12-04T11:00:00Z'))).toBeUndefined();
    expect(rangeAt(w as NonNullable<typeof w>, new Date('2026-12-04T10:00:30Z'))).toBe(w?.earlier);
    expect(rangeAt(w as NonNullable<typeof w>, new Date('2026-12-04T13:30:00Z'))).toBe(w);
  });

  it('with a second gap after a newer base backup, is the stretch between the gaps, not the oldest one (it hid the newer stretch)', () => {
    const { bases, wal: toSix } = acrossGap();
    // 7 rotted and set aside (or lost): the stretch opened by `new` ends at 6.
    const wal = [...toSix, seg('000000010000000000000008', '2026-12-04T16:00:00Z')];
    const w = recoverableWindow(bases, wal);
    expect(w).toEqual({
      from: new Date('2026-12-04T13:00:00Z'),
      to: new Date('2026-12-04T14:00:00Z'),
      opens: bases[1],
      timeline: 1,
      gaps: ['000000010000000000000003', '000000010000000000000007'],
      gap: '000000010000000000000007',
      reachesNewest: false,
      earlier: { from: new Date('2026-12-04T10:00:00Z'), to: new Date('2026-12-04T10:01:00Z'), opens: bases[0], timeline: 1, gap: '000000010000000000000003' },
    });
    // restore-pitr: a moment of the newer stretch starts from the newer base backup; one after the second gap is refused.
    expect(chooseRecovery(bases, wal, new Date('2026-12-04T13:30:00Z')).base).toBe(bases[1]);
    expect(() => chooseRecovery(bases, wal, new Date('2026-12-04T15:00:00Z'))).toThrow(
      '2026-12-04T15:00:00.000Z is outside what the archive holds: the recoverable window is 2026-12-04T13:00:00.000Z to 2026-12-04T14:00:00.000Z (segment 000000010000000000000007 is missing: it ends at that gap), and 2026-12-04T10:00:00.000Z to 2026-12-04T10:01:00.000Z before the gap at segment 000000010000000000000003',
    );
  });

  it('restore-pitr starts from a base backup whose end segment was archived before the bot stamped it finished (CI)', () => {
    const old = { id: 'old', startLsn: '0/2000028', endLsn: '0/2000100', timeline: 1, finishedAt: '2026-12-04T10:00:00Z' } as BaseBackup;
    const fresh = { id: 'fresh', startLsn: '0/4000028', endLsn: '0/4000100', timeline: 1, finishedAt: '2026-12-04T12:00:00.300Z' } as BaseBackup;
    const wal = [
      seg('000000010000000000000002', '2026-12-04T10:01:00Z'),
      seg('000000010000000000000003', '2026-12-04T11:00:00Z'),
      // pg_backup_stop's switch completed it; the archiver stamped it before the bot stamped `fresh` finished.
      seg('000000010000000000000004', '2026-12-04T12:00:00.100Z'),
    ];
    const at = new Date('2026-12-04T12:00:00.100Z');
    expect(recoverableWindow([old, fresh], wal)?.to).toEqual(at);
    // `latest` is that time: the fresh base backup, not the old one and every segment since.
    expect(chooseRecovery([old, fresh], wal, at).base).toBe(fresh);
    expect(chooseRecovery([old, fresh], wal, new Date('2026-12-04T11:30:00Z')).base).toBe(old);
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

  describe('a base backup whose end segment was archived before the bot stamped it finished', () => {
    // pg_backup_stop switches segments: the archiver can store the segment holding the end LSN a moment before
    // pg_basebackup exits and the bot writes finishedAt. Seen under load: the window stayed empty until the next segment.
    const b = { id: 'late', startLsn: '0/2000028', endLsn: '0/2000138', timeline: 1, finishedAt: '2026-12-04T10:00:01.500Z' } as BaseBackup;
    const endSegment = '000000010000000000000002';

    it('opens the window once that whole segment is archived, from the segment’s time', () => {
      const w = recoverableWindow([b], [seg(endSegment, '2026-12-04T10:00:01.200Z')]);
      expect(w).toMatchObject({ from: new Date('2026-12-04T10:00:01.200Z'), to: new Date('2026-12-04T10:00:01.200Z'), opens: b, reachesNewest: true });
      // A restore to that moment starts from that base backup, though its finishedAt is later.
      expect(chooseRecovery([b], [seg(endSegment, '2026-12-04T10:00:01.200Z')], new Date('2026-12-04T10:00:01.200Z')).base).toBe(b);
    });

    it('is opened from a backlog’s segment (stamped by what it holds) only at the backup’s finish', () => {
      // Its newest commit (or the segment before's time) may lie anywhere after the backup began, before its real end.
      const backlog = (reachedBy: WalEntry['reachedBy'], at: string) => ({ ...seg(endSegment, at), reachedBy });
      for (const by of ['commit', 'sampled', 'segment before', 'unknown'] as const)
        expect(recoverableWindow([b], [backlog(by, '2026-12-04T10:00:01.200Z')])).toBeNull();
      expect(recoverableWindow([b], [backlog('commit', '2026-12-04T10:00:02Z')])).toMatchObject({ from: new Date('2026-12-04T10:00:01.500Z') });
      // A live segment's time (archived a second after it filled) still opens it from its own time.
      expect(recoverableWindow([b], [backlog('archived', '2026-12-04T10:00:01.200Z')])).toMatchObject({ from: new Date('2026-12-04T10:00:01.200Z') });
    });

    it('is opened at the time a segment was stored, not the time it holds WAL up to; none until that is reached (QA: a live segment)', () => {
      // Live, busy: it holds WAL up to its last sample before the switch (.900), before the backup ended; stored at 1.2 s.
      const live = { ...seg(endSegment, '2026-12-04T10:00:00.900Z'), reachedBy: 'sampled' as const, storedAt: '2026-12-04T10:00:01.200Z' };
      expect(recoverableWindow([b], [live])).toBeNull();
      expect(consistentBy(b, [live], new Date('2026-12-04T10:00:01.200Z'))).toBe(true);
      // The next snapshot reaches past it: the window runs from the time the end segment was stored.
      const next = { name: '000000010000000000000003', archivedAt: '2026-12-04T10:00:01.300Z', storedAt: '2026-12-04T10:00:01.350Z', partial: true };
      expect(recoverableWindow([b], [live, next])).toMatchObject({ from: new Date('2026-12-04T10:00:01.200Z'), to: new Date('2026-12-04T10:00:01.300Z') });
      // Idle at its end when stored: both times are that one.
      const idle = { ...live, archivedAt: '2026-12-04T10:00:01.200Z' };
      expect(recoverableWindow([b], [idle])).toMatchObject({ from: new Date('2026-12-04T10:00:01.200Z'), to: new Date('2026-12-04T10:00:01.200Z') });
      // A backlog's segment, stored after the backup finished: from the finish, once it holds WAL past it.
      const backlog = { ...seg(endSegment, '2026-12-04T10:00:01.000Z'), reachedBy: 'sampled' as const, storedAt: '2026-12-04T10:05:00Z' };
      expect(recoverableWindow([b], [backlog])).toBeNull();
      expect(recoverableWindow([b], [backlog, { ...seg('000000010000000000000003', '2026-12-04T10:04:00Z'), reachedBy: 'sampled' as const }])).toMatchObject({
        from: new Date('2026-12-04T10:00:01.500Z'),
      });
    });

    it('is opened by a partial snapshot of that segment reaching its end LSN, judged by position, whatever the clocks say', () => {
      // The worker's clock behind the server's: the finish looks earlier than the snapshot's time, though it stops short.
      const short = { name: endSegment, archivedAt: '2026-12-04T10:00:02Z', storedAt: '2026-12-04T10:00:02Z', walEnd: '0/2000100', partial: true };
      expect(recoverableWindow([b], [short])).toBeNull();
      // Ahead: the finish looks later than the snapshot's time, though it holds the end.
      const past = { ...short, archivedAt: '2026-12-04T10:00:01.100Z', storedAt: '2026-12-04T10:00:01.100Z', walEnd: '0/2000200' };
      expect(recoverableWindow([b], [past])).toMatchObject({ from: new Date('2026-12-04T10:00:01.100Z'), to: new Date('2026-12-04T10:00:01.100Z') });
    });

    it('is not opened by a partial snapshot of that segment taken before the bot stamped the backup finished', () => {
      // The snapshot may stop short of the end LSN: only its time can say it reaches the end.
      expect(recoverableWindow([b], [{ name: endSegment, archivedAt: '2026-12-04T10:00:01.200Z', partial: true }])).toBeNull();
      expect(recoverableWindow([b], [{ name: endSegment, archivedAt: '2026-12-04T10:00:02Z', partial: true }])).toMatchObject({
        from: new Date('2026-12-04T10:00:01.500Z'),
      });
    });

    it('is not opened by a segment before the end LSN’s, however late it was archived', () => {
      // The end segment is missing: recovery would never become consistent, so no stretch before the gap is whole.
      const ending = { ...b, endLsn: '0/3000138' };
      const wal = [seg(endSegment, '2026-12-04T10:05:00Z'), seg('000000010000000000000004', '2026-12-04T10:10:00Z')];
      expect(walGaps([ending], wal)).toEqual(['000000010000000000000003']);
      expect(recoverableWindow([ending], wal)).toBeNull();
      // restore-pitr (and the PITR restore test) name that gap, not "not yet": waiting would not open it (CI's flake).
      expect(() => chooseRecovery([{ ...ending, target: 'shop' }], wal, new Date('2026-12-04T10:05:00Z'))).toThrow(
        /^No point in time of shop can be recovered: segment 000000010000000000000003 is missing from the WAL archive, before any WAL that reaches past the base backup's end\. A base backup taken after it opens the window again/,
      );
    });

    it('is opened by a partial snapshot of a later segment, and not by an earlier segment', async () => {
      const later = { name: '000000010000000000000003', archivedAt: '2026-12-04T10:00:01.400Z', partial: true };
      // The end segment from a backlog (its time a lower bound, before the finish) cannot open it; the later snapshot does.
      const backlog = { ...seg(endSegment, '2026-12-04T10:00:01.200Z'), reachedBy: 'sampled' as const };
      expect(recoverableWindow([b], [backlog, later])).toMatchObject({ from: new Date('2026-12-04T10:00:01.400Z') });
      // The end segment archived live (old entries: the time it was archived) opens it from its own time.
      expect(recoverableWindow([b], [seg(endSegment, '2026-12-04T10:00:01.200Z'), later])).toMatchObject({ from: new Date('2026-12-04T10:00:01.200Z') });
      const ending = { ...b, endLsn: '0/3000138' };
      expect(recoverableWindow([ending], [seg(endSegment, '2026-12-04T10:00:01.200Z')])).toBeNull();
      expect(() => chooseRecovery([ending], [seg(endSegment, '2026-12-04T10:00:01.200Z')], new Date('2026-12-04T10:00:01.200Z'))).toThrow(
        /no base backup with WAL archived that reaches past its end yet/,
      );
    });
  });
});

describe('shownRange: the window as it is shown, to the second', () => {
  const t = (d: Date) => d.toISOString().slice(11, 19);
  it('rounds the start up and the end down, so a time typed as shown is inside; within one second, to the millisecond (QA)', () => {
    expect(shownRange({ from: new Date('2026-12-06T13:28:09.463Z'), to: new Date('2026-12-06T13:30:00.900Z') }, t)).toBe('from 13:28:10 to 13:30:00');
    expect(shownRange({ from: new Date('2026-12-06T13:28:09.000Z'), to: new Date('2026-12-06T13:28:09.000Z') }, t)).toBe('from 13:28:09 to 13:28:09');
    expect(shownRange({ from: new Date('2026-12-06T13:28:09.463Z'), to: new Date('2026-12-06T13:28:09.900Z') }, t)).toBe(
      'from 2026-12-06T13:28:09.463Z to 2026-12-06T13:28:09.900Z (less than a second)',
    );
  });
});
