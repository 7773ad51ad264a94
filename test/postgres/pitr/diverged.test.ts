import { chown, mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { asServerUser, type EphemeralPostgres, freePort, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';
import { recordOldHistories } from '../../../src/postgres/pitr/history-record.ts';
import { parseHistory } from '../../../src/postgres/pitr/lane.ts';
import { archivedWal } from '../../../src/postgres/pitr/wal-index.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { divergedSentence, forkedBeforeSpool, purgeLeftovers, setAsideDiverged, spoolPastFork } from '../../../src/postgres/pitr/diverged.ts';
import { formatLsn, parseLsn, SEGMENT_BYTES, segmentOf, segmentStartLsn } from '../../../src/postgres/pitr/lsn.ts';

/** pg_receivewal's stderr, as PostgreSQL 15 refuses a start past the promoted server's fork. */
const SAID =
  'pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  requested starting point 0/6000000 on timeline 1 is not in this server\'s history\nDETAIL:  This server\'s history forked from timeline 1 at 0/5025AA0.\npg_receivewal: error: disconnected\n';

describe('a spool past the promoted server’s fork', () => {
  let spool: string;
  beforeEach(async () => {
    spool = await mkdtemp(join(tmpdir(), 'pgbb-diverged-'));
  });
  afterEach(() => rm(spool, { recursive: true, force: true }));
  const never = async (): Promise<number> => {
    throw new Error('not asked for a fork within a segment');
  };

  it('reads the refusal', () => {
    expect(forkedBeforeSpool(SAID)).toEqual({ asked: '0/6000000', timeline: 1, at: '0/5025AA0' });
    expect(forkedBeforeSpool('pg_receivewal: error: could not connect to server')).toBeNull();
  });

  it('sets the old timeline’s partial segment aside and starts again at the fork’s segment on the old timeline', async () => {
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    const f = forkedBeforeSpool(SAID) as NonNullable<ReturnType<typeof forkedBeforeSpool>>;
    const r = await setAsideDiverged(spool, f, never);
    expect(r).toEqual({ moved: ['000000010000000000000006.partial'], waiting: [] });
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000010000000000000005.partial']);
    expect((await stat(join(spool, '000000010000000000000005.partial'))).size).toBe(SEGMENT_BYTES);
    expect(await readdir(join(spool, '.diverged'))).toEqual(['000000010000000000000006.partial']);
    expect(divergedSentence(f, r)).toBe(
      "the promoted server left timeline 1 at 0/5025AA0, but the bot had received WAL the old primary wrote past that point (written there, never replicated); 000000010000000000000006.partial set aside in the spool's .diverged directory; streaming goes on along the new timeline from the fork",
    );
  });

  it('at a segment’s start, starts on the timeline that follows, at that segment', async () => {
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    const r = await setAsideDiverged(spool, { asked: '0/6000000', timeline: 1, at: '0/5000000' }, async () => 2);
    expect(r.moved).toEqual(['000000010000000000000006.partial']);
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000020000000000000005.partial']);
  });

  it('while a whole segment of the old timeline from the fork’s on waits for the archiver, makes the start all the same', async () => {
    await writeFile(join(spool, '000000010000000000000005'), 'whole');
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    const f = forkedBeforeSpool(SAID) as NonNullable<ReturnType<typeof forkedBeforeSpool>>;
    const r = await setAsideDiverged(spool, f, never);
    expect(r).toEqual({ moved: ['000000010000000000000006.partial'], waiting: ['000000010000000000000005'] });
    // Once the archiver has taken the whole one, pg_receivewal finds the start: never an empty spool (review).
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000010000000000000005', '000000010000000000000005.partial']);
    expect(divergedSentence(f, r)).toContain('once the archiver has stored 000000010000000000000005, streaming goes on along the new timeline');
  });

  it('at a segment’s start, the old timeline’s file of that segment is the old primary’s alone: set aside too', async () => {
    await writeFile(join(spool, '000000010000000000000005.partial'), 'old primary');
    const r = await setAsideDiverged(spool, { asked: '0/5000000', timeline: 1, at: '0/5000000' }, async () => 2);
    expect(r.moved).toEqual(['000000010000000000000005.partial']);
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000020000000000000005.partial']);
  });

  it('moves nothing when the next timeline cannot be asked: the spool stays as it was', async () => {
    await writeFile(join(spool, '000000010000000000000006.partial'), 'old primary');
    await expect(
      setAsideDiverged(spool, { asked: '0/6000000', timeline: 1, at: '0/5000000' }, async () => {
        throw new Error('the server is gone');
      }),
    ).rejects.toThrow('the server is gone');
    expect(await readdir(spool)).toEqual(['000000010000000000000006.partial']);
  });
});

/**
 * The spool judged by the server's own history (spoolPastFork), whatever pg_receivewal printed: a real server on
 * timeline 2 (a cluster started as a standby with nothing to follow, then promoted).
 */
describe('a spool judged by the server’s history', () => {
  let pg: EphemeralPostgres;
  let spool: string;
  let fork: { timeline: number; switchLsn: string };
  beforeAll(async () => {
    pg = await startEphemeralPostgres();
    const user = await asServerUser();
    const ctl = async (...args: string[]) => {
      const [cmd, ...rest] = [...user.prefix, join(pg.binDir, 'pg_ctl'), '-D', pg.dataDir, ...args];
      await execa(cmd as string, rest, { stdin: 'ignore' });
    };
    await ctl('-m', 'fast', '-w', 'stop');
    const signal = join(pg.dataDir, 'standby.signal');
    await writeFile(signal, '');
    if (user.uid !== undefined) await chown(signal, user.uid, user.gid as number);
    await ctl('-l', join(pg.dir, 'server.log'), '-w', 'start');
    await ctl('-w', 'promote');
    const [history] = await withClient(pg.url, async (c) => (await c.query<{ h: string }>("SELECT pg_read_file('pg_wal/00000002.history') AS h")).rows);
    [fork] = parseHistory(history?.h ?? '') as [{ timeline: number; switchLsn: string }];
  }, 60_000);
  afterAll(() => pg?.stop());
  beforeEach(async () => {
    spool = await mkdtemp(join(tmpdir(), 'pgbb-diverged-'));
  });
  afterEach(() => rm(spool, { recursive: true, force: true }));

  const at = (lsn: bigint, timeline: number) => segmentOf(formatLsn(lsn), timeline);

  it('finds a file of the old timeline past the fork, with no word from pg_receivewal', async () => {
    expect(fork.timeline).toBe(1);
    const past = at(parseLsn(fork.switchLsn) + BigInt(SEGMENT_BYTES), 1);
    await writeFile(join(spool, `${past}.partial`), '');
    expect(await spoolPastFork(pg.url, spool)).toEqual({ asked: formatLsn(segmentStartLsn(past)), timeline: 1, at: fork.switchLsn });
  });

  it('finds a whole segment of the old timeline holding the fork: pg_receivewal asks for the next one', async () => {
    const holding = at(parseLsn(fork.switchLsn), 1);
    await writeFile(join(spool, holding), '');
    expect(await spoolPastFork(pg.url, spool)).toEqual({ asked: formatLsn(segmentStartLsn(holding) + BigInt(SEGMENT_BYTES)), timeline: 1, at: fork.switchLsn });
  });

  it('finds nothing for a spool the server can go on from: the old timeline before its fork, the new timeline, an empty spool', async () => {
    expect(await spoolPastFork(pg.url, spool)).toBeNull();
    await writeFile(join(spool, `${at(parseLsn(fork.switchLsn), 1)}.partial`), '');
    expect(await spoolPastFork(pg.url, spool)).toBeNull();
    await writeFile(join(spool, `${at(parseLsn(fork.switchLsn), 2)}.partial`), '');
    expect(await spoolPastFork(pg.url, spool)).toBeNull();
  });

  it('records the history files archived without their record from the server’s copies, and a listing sees it (history-record.ts)', async () => {
    const store = new LocalWalStore(spool, 'shop');
    await mkdir(store.dir, { recursive: true });
    const entry = (name: string) => ({
      name,
      file: `${name}.zst`,
      bytes: 3,
      sha256: '0'.repeat(64),
      rawBytes: 40,
      compression: 'zstd' as const,
      encryption: 'none' as const,
      archivedAt: '2026-12-01T00:00:00.000Z',
    });
    for (const name of ['00000002.history', '00000005.history', '000000010000000000000001']) {
      await writeFile(join(store.dir, `${name}.zst`), 'zst');
      await store.index(entry(name));
    }
    // Listed before, as a long-running bot process has it cached.
    expect((await archivedWal(store)).find((e) => e.name === '00000002.history')?.forks).toBeUndefined();
    expect(await recordOldHistories(store, pg.url, silentLog)).toEqual(['00000002.history']);
    expect((await store.entry('00000002.history'))?.forks).toEqual([fork]);
    // A timeline the server has no history file of stays as it was; recorded ones are not asked again.
    expect((await store.entry('00000005.history'))?.forks).toBeUndefined();
    expect((await archivedWal(store)).find((e) => e.name === '00000002.history')?.forks).toEqual([fork]);
    expect(await recordOldHistories(store, pg.url, silentLog)).toEqual([]);
  });

  it('fails when the server cannot be asked (the receiver then reads pg_receivewal’s words)', async () => {
    await writeFile(join(spool, `${at(parseLsn(fork.switchLsn) + BigInt(SEGMENT_BYTES), 1)}.partial`), '');
    await expect(spoolPastFork(`postgres://postgres@127.0.0.1:${await freePort()}/postgres`, spool)).rejects.toThrow();
  });
});

describe('what failovers leave in the spool', () => {
  let spool: string;
  beforeEach(async () => {
    spool = await mkdtemp(join(tmpdir(), 'pgbb-leftovers-'));
  });
  afterEach(() => rm(spool, { recursive: true, force: true }));
  const now = new Date('2026-12-20T00:00:00Z');
  const week = 7 * 86_400_000;
  const put = async (name: string, daysAgo: number) => {
    await writeFile(join(spool, name), 'wal');
    const t = new Date(now.getTime() - daysAgo * 86_400_000);
    await utimes(join(spool, name), t, t);
  };

  it('removes, once older than the retention, the set-aside files and older timelines’ partial segments; nothing else', async () => {
    await mkdir(join(spool, '.diverged'));
    await put('.diverged/000000010000000000000006.partial', 8);
    await put('.diverged/000000010000000000000009.partial', 2);
    await put('000000010000000000000005.partial', 8);
    await put('000000020000000000000004.partial', 8);
    await put('000000030000000000000007', 9);
    await put('000000030000000000000008.partial', 9);
    expect((await purgeLeftovers(spool, week, now)).sort()).toEqual([
      '.diverged/000000010000000000000006.partial',
      '000000010000000000000005.partial',
      '000000020000000000000004.partial',
    ]);
    expect((await readdir(spool)).sort()).toEqual(['.diverged', '000000030000000000000007', '000000030000000000000008.partial']);
    expect(await readdir(join(spool, '.diverged'))).toEqual(['000000010000000000000009.partial']);
  });

  it('says nothing of the old primary’s WAL when the bot’s ends exactly at the switch and nothing was set aside', () => {
    expect(divergedSentence({ asked: '0/6000000', timeline: 1, at: '0/6000000' }, { moved: [], waiting: [] })).toBe(
      'the promoted server left timeline 1 at 0/6000000, exactly where the WAL the bot holds of it ends; streaming goes on along the new timeline from the fork',
    );
    expect(divergedSentence({ asked: '0/6000000', timeline: 1, at: '0/6000000' }, { moved: ['000000010000000000000006.partial'], waiting: [] })).toMatch(
      /^the promoted server left timeline 1 at 0\/6000000, but the bot had received WAL the old primary wrote past that point/,
    );
  });

  it('counts a file set aside from when it was set aside, not from the old primary’s last write to it (second reader)', async () => {
    await put('000000010000000000000006.partial', 30);
    const f = { asked: '0/6000000', timeline: 1, at: '0/5025AA0' };
    const r = await setAsideDiverged(spool, f, async () => 2);
    expect(r.moved).toEqual(['000000010000000000000006.partial']);
    expect(await purgeLeftovers(spool, week, new Date())).toEqual([]);
    expect(await readdir(join(spool, '.diverged'))).toEqual(['000000010000000000000006.partial']);
  });

  it('keeps an older timeline’s partial segment within the retention, and any while no newer timeline is in the spool', async () => {
    await put('000000010000000000000005.partial', 3);
    await put('000000020000000000000006.partial', 0);
    expect(await purgeLeftovers(spool, week, now)).toEqual([]);
    await rm(join(spool, '000000020000000000000006.partial'));
    await put('000000010000000000000005.partial', 30);
    expect(await purgeLeftovers(spool, week, now)).toEqual([]);
    expect(await purgeLeftovers(join(spool, 'gone'), week, now)).toEqual([]);
  });
});
