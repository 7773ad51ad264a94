import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveWalFile } from '../../../src/postgres/pitr/archiver.ts';
import { baseOnLane, laneOf, onLane, parseHistory, promotionTo } from '../../../src/postgres/pitr/lane.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';

/** Timeline 3's history file as PostgreSQL 15 writes it at a second promotion. */
const HISTORY_3 = '1\t0/3800000\tno recovery target specified\n\n2\t0/5000A28\tbefore 2026-12-04 10:30:00+00\n';

describe('timeline lanes: the WAL recovery along a timeline reads', () => {
  it('reads a history file as PostgreSQL writes it', () => {
    expect(parseHistory(HISTORY_3)).toEqual([
      { timeline: 1, switchLsn: '0/3800000' },
      { timeline: 2, switchLsn: '0/5000A28' },
    ]);
    expect(parseHistory('# a comment\n\n')).toEqual([]);
  });

  it('takes each segment from the newest timeline begun by then; the switch segment from the new one', () => {
    const lane = laneOf([{ name: '00000003.history', forks: parseHistory(HISTORY_3) }], 3);
    expect([2, 3, 4, 5, 6].map((n) => lane.at(n))).toEqual([1, 2, 2, 3, 3]);
    expect(onLane({ name: '000000010000000000000002' }, lane)).toBe(true);
    expect(onLane({ name: '000000010000000000000003' }, lane)).toBe(false);
    expect(onLane({ name: '000000020000000000000003' }, lane)).toBe(true);
    expect(onLane({ name: '000000020000000000000005' }, lane)).toBe(false);
    expect(onLane({ name: '000000030000000000000005' }, lane)).toBe(true);
    // A base backup on an older timeline of the history, ended by its switch: recovery starts from it; one ended past it not.
    expect(baseOnLane({ timeline: 1, endLsn: '0/3000100' }, lane)).toBe(true);
    expect(baseOnLane({ timeline: 1, endLsn: '0/3900000' }, lane)).toBe(false);
    expect(baseOnLane({ timeline: 4, endLsn: '0/6000000' }, lane)).toBe(false);
    // Without the history file's record: the timeline alone.
    const alone = laneOf([{ name: '00000003.history' }], 3);
    expect(onLane({ name: '000000010000000000000002' }, alone)).toBe(false);
    expect(baseOnLane({ timeline: 1, endLsn: '0/3000100' }, alone)).toBe(false);
  });
});

describe('lanes at the edges (review)', () => {
  it('a switch at a segment’s very start: that segment is the new timeline’s, the one before the old one’s', () => {
    const lane = laneOf([{ name: '00000002.history', forks: [{ timeline: 1, switchLsn: '0/5000000' }] }], 2);
    expect([4, 5].map((n) => lane.at(n))).toEqual([1, 2]);
    // A base backup that ended exactly at the switch is on it.
    expect(baseOnLane({ timeline: 1, endLsn: '0/5000000' }, lane)).toBe(true);
  });

  it('a switch across a log file boundary (0/FF… to 1/0)', () => {
    const lane = laneOf([{ name: '00000002.history', forks: [{ timeline: 1, switchLsn: '1/800000' }] }], 2);
    expect(onLane({ name: '0000000100000000000000FF' }, lane)).toBe(true);
    expect(onLane({ name: '000000010000000100000000' }, lane)).toBe(false);
    expect(onLane({ name: '000000020000000100000000' }, lane)).toBe(true);
    expect(onLane({ name: '0000000200000000000000FF' }, lane)).toBe(false);
  });

  it('two promotions within one segment: the middle timeline has no segment of its own', () => {
    const lane = laneOf(
      [
        {
          name: '00000003.history',
          forks: [
            { timeline: 1, switchLsn: '0/3000100' },
            { timeline: 2, switchLsn: '0/3000900' },
          ],
        },
      ],
      3,
    );
    expect([2, 3, 4].map((n) => lane.at(n))).toEqual([1, 3, 3]);
    expect(onLane({ name: '000000020000000000000003' }, lane)).toBe(false);
  });
});

describe('archiving a history file', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgbb-lane-'));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('records where each older timeline was left, so the window can follow the promotion', async () => {
    const file = join(root, '00000003.history');
    await writeFile(file, HISTORY_3);
    const store = new LocalWalStore(root, 'shop');
    const entry = await archiveWalFile(file, '00000003.history', { store, zstd: 'zstd', level: 1, recipients: [], ageEngine: undefined });
    expect(entry.forks).toEqual([
      { timeline: 1, switchLsn: '0/3800000' },
      { timeline: 2, switchLsn: '0/5000A28' },
    ]);
    expect((await store.entry('00000003.history'))?.forks).toEqual(entry.forks);
    // The promotion to timeline 3 as the channel is told of it: the timeline it left, where, when the file arrived.
    expect(promotionTo([entry], 3)).toEqual({ timeline: 3, from: 2, switchLsn: '0/5000A28', at: new Date(entry.storedAt ?? entry.archivedAt) });
    expect(promotionTo([entry], 2)).toBeNull();
    expect(promotionTo([{ ...entry, forks: undefined }], 3)).toBeNull();
  });
});
