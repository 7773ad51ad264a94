import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseLsn } from '../../../src/postgres/pitr/lsn.ts';
import { RpoTracker } from '../../../src/postgres/pitr/rpo.ts';
import { LIVE_MS, segmentReach } from '../../../src/postgres/pitr/segment-time.ts';
import { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore, type WalEntry, WalEntrySchema } from '../../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';
import { until } from '../../support/until.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A backlog archived after the server moved on (the receiver was down while the slot kept the WAL) is stamped with
 * the time its WAL reaches, not the time it was archived: the recoverable window's end is read from these times.
 * Real server (wal_level=replica, the test setup's), real pg_receivewal and pg_waldump.
 */
describe('the time an archived WAL segment reaches', () => {
  let dir: string;
  let store: LocalWalStore;
  let pgReceivewal: string;
  let pgWaldump: string | null;
  const slot = `pgbb_test_${randomBytes(4).toString('hex')}`;
  const server = () => inject('pgUrl');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-segtime-'));
    store = new LocalWalStore(join(dir, 'backups'), 'app');
    const tools = await findPgTools({ serverMajor: 15 });
    pgReceivewal = (await findPgProgram('pg_receivewal', tools.pgDump, tools.major)) as string;
    pgWaldump = await findPgProgram('pg_waldump', tools.pgDump, tools.major);
    await withClient(server(), (c) => c.query('CREATE TABLE IF NOT EXISTS pgbb_segtime (n int)'));
  });
  afterAll(async () => {
    await withClient(server(), (c) => c.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot])).catch(
      () => undefined,
    );
    await rm(dir, { recursive: true, force: true });
  });

  const archive = (reachedAt?: ReturnType<typeof segmentReach>) =>
    startWalArchive({
      target: 'app',
      pgReceivewal,
      replicationUrl: server(),
      slot,
      spool: join(dir, 'spool'),
      store,
      zstd: 'zstd',
      level: 1,
      recipients: [],
      ageEngine: undefined,
      log: silentLog,
      sweepMs: 100,
      backoff: { minMs: 100, maxMs: 500 },
      upAfterMs: 500,
      ...(reachedAt ? { reachedAt } : {}),
    });

  const archived = (name: string) => until(`WAL ${name} archived`, async () => (await store.list()).find((e) => e.name === name));

  /** A commit, then a switch: the segment that holds the commit, the commit's bounds and the switch's time (server clock). */
  const commitAndSwitch = () =>
    withClient(server(), async (c) => {
      const before = (await c.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0]?.t as Date;
      await c.query('INSERT INTO pgbb_segtime VALUES (1)');
      const { rows } = await c.query<{ name: string; t: Date }>('SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS name, clock_timestamp() AS t');
      const switched = (await c.query<{ t: Date }>('SELECT clock_timestamp() AS t FROM pg_switch_wal()')).rows[0]?.t as Date;
      return { name: rows[0]?.name as string, committedFrom: before, committedBy: rows[0]?.t as Date, switched };
    });

  /** The slot exists and the receiver confirmed everything so far: what is written next waits in the slot. */
  async function stoppedArchive(): Promise<void> {
    const first = archive();
    try {
      // Streaming, not only started: pg_receivewal creates its slot without reserving WAL, and a receiver slow to
      // connect (the start of the suite) begins at the server's position then, past a segment switched before it.
      const streaming = () =>
        withClient(server(), async (c) => {
          const { rows } = await c.query<{ ok: boolean }>('SELECT active AND restart_lsn IS NOT NULL AS ok FROM pg_replication_slots WHERE slot_name = $1', [
            slot,
          ]);
          return rows[0]?.ok ? true : undefined;
        });
      await until('the receiver streaming', streaming, 60_000);
      // Written first: with nothing written since the last switch, pg_switch_wal names a segment completed before
      // this slot existed, which the receiver never gets (CI, at the start of the suite).
      const seg = await withClient(server(), async (c) => {
        await c.query('INSERT INTO pgbb_segtime VALUES (0)');
        return (await c.query<{ n: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS n')).rows[0]?.n;
      });
      await archived(seg as string);
    } finally {
      await first.stop();
    }
  }

  /**
   * A busy server: a commit every 50 ms on a connection of its own, so the server moves past each switch at once.
   * (An idle server after a switch stays at the segment's end, and the segment then truly holds every change made
   * until the next write: sampled, it is stamped up to then.)
   */
  const busy = () => {
    let on = true;
    const done = withClient(server(), async (c) => {
      while (on) {
        await c.query('INSERT INTO pgbb_segtime VALUES (2)');
        await sleep(50);
      }
    });
    return async () => {
      on = false;
      await done;
    };
  };

  const samplePosition = async (tracker: RpoTracker) =>
    tracker.add({
      at: new Date(),
      lsn: parseLsn(await withClient(server(), async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_lsn() AS l')).rows[0]?.l as string)),
    });

  it('a running worker: each backlog segment gets the time the server was last seen before its end, not the time it was archived', async () => {
    await stoppedArchive();
    const quiet = busy();
    // The worker's RPO monitor samples the server's position all along, while its receiver is down.
    const tracker = new RpoTracker();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await samplePosition(tracker);
        await sleep(150);
      }
    })();
    // A sample before the first switch (CI: the first came after it, and the segment had only the one before's time).
    await until('a first sample', async () => (tracker.size > 0 ? true : undefined));
    const a = await commitAndSwitch();
    await sleep(1500);
    const b = await commitAndSwitch();
    await sleep(1500);
    const back = archive(segmentReach({ tracker, pgWaldump: null, entry: (n) => store.entry(n), liveMs: 1000 }));
    const restarted = Date.now();
    try {
      const [ea, eb] = await Promise.all([archived(a.name), archived(b.name)]);
      for (const [e, w] of [
        [ea, a],
        [eb, b],
      ] as Array<[WalEntry, typeof a]>) {
        const t = Date.parse(e.archivedAt);
        // By its switch (but for the server's WAL writer's delay: synchronous_commit is off in the test server), and
        // after the commit it holds but for one sampling interval.
        expect(t).toBeLessThanOrEqual(w.switched.getTime() + 400);
        expect(t).toBeGreaterThan(w.committedFrom.getTime() - 400);
        expect(t).toBeLessThan(restarted - 1000);
      }
      expect(Date.parse(ea.archivedAt)).toBeLessThan(Date.parse(eb.archivedAt) - 1000);
      expect([ea.reachedBy, eb.reachedBy]).toEqual(['sampled', 'sampled']);
    } finally {
      sampling = false;
      await Promise.all([sampler, quiet()]);
      await back.stop();
    }
  });

  it('a worker started during the backlog: the segment’s newest commit, read with pg_waldump', async () => {
    expect(pgWaldump).not.toBeNull();
    await stoppedArchive();
    const quiet = busy();
    const a = await commitAndSwitch();
    await sleep(2000);
    // A new worker: its first sample is already past the backlog, so the segments' own commits say how far they reach.
    const tracker = new RpoTracker();
    await samplePosition(tracker);
    expect(tracker.coveredAt(parseLsn('0/0'))).toBeNull();
    const back = archive(segmentReach({ tracker, pgWaldump, entry: (n) => store.entry(n), liveMs: 1000 }));
    const restarted = Date.now();
    try {
      const e = await archived(a.name);
      const t = Date.parse(e.archivedAt);
      expect(e.reachedBy).toBe('commit');
      // Its newest commit: this test's, or another test file's on the shared server, before the switch.
      expect(t).toBeGreaterThanOrEqual(a.committedFrom.getTime());
      expect(t).toBeLessThanOrEqual(a.switched.getTime());
      expect(t).toBeLessThan(restarted - 1500);
    } finally {
      await quiet();
      await back.stop();
    }
  });
});

describe('segmentReach, by its rules', () => {
  const SEG = '000000010000000000000005';
  const end = 0x6000000n;
  const now = new Date('2026-12-06T12:00:00Z');
  const ago = (s: number) => new Date(now.getTime() - s * 1000);
  const entries = (m: Record<string, string>) => async (name: string) => (m[name] ? { archivedAt: m[name] } : null);
  const none = entries({});
  const tracker = (...samples: Array<[number, bigint]>) => {
    const t = new RpoTracker();
    for (const [s, lsn] of samples) t.add({ at: ago(s), lsn });
    return t;
  };

  it('a live segment (its newest sample at most liveMs old): that sample, or now when a sample taken as it is archived finds the server at its end', async () => {
    const reach = (t: RpoTracker, sampleNow?: () => Promise<unknown>) =>
      segmentReach({ tracker: t, pgWaldump: null, entry: none, ...(sampleNow ? { sampleNow } : {}) })(SEG, '/x', now);
    // Moved on (a busy server): the newest sample at or before the end, not the time it is archived (QA: up to a second too far).
    const busy = tracker([5, end - 10n], [3, end + 10n]);
    expect(await reach(busy, async () => busy.add({ at: new Date(now.getTime() + 50), lsn: end + 99n }))).toMatchObject({ at: ago(5), source: 'sampled' });
    // Standing at its end (idle after a switch): it holds everything up to now.
    const idle = tracker([LIVE_MS / 1000, end]);
    expect(await reach(idle, async () => idle.add({ at: new Date(now.getTime() + 50), lsn: end }))).toMatchObject({ at: now, source: 'sampled' });
    // The sample failed, or none is taken: the newest one it has.
    const failed = tracker([2, end]);
    expect(await reach(failed, () => Promise.reject(new Error('connection refused')))).toMatchObject({ at: ago(2), source: 'sampled' });
    expect(await reach(tracker([2, end - 1n]))).toMatchObject({ at: ago(2), source: 'sampled' });
  });

  it('reads the worker’s “now” in the server’s clock, by the difference the newest sample measured (QA: a worker clock ahead)', async () => {
    // The server's clock 3 s behind the worker's: samples are timed by the server's.
    const t = new RpoTracker();
    t.add({ at: ago(5), seenAt: ago(2), lsn: end - 10n });
    t.add({ at: ago(4), seenAt: ago(1), lsn: end });
    const serverNow = ago(3);
    const r = await segmentReach({ tracker: t, pgWaldump: null, entry: none })(SEG, '/x', now);
    // Live by the server's clock (1 s old, not 4), reaching its newest sample, stored at the server's "now".
    expect(r).toEqual({ at: ago(4), source: 'sampled', storedAt: serverNow });
    // Nothing known: the time it is archived, by the server's clock, not 3 s past it.
    const unknown = new RpoTracker();
    unknown.add({ at: ago(3), seenAt: now, lsn: end + 1n });
    expect(await segmentReach({ tracker: unknown, pgWaldump: null, entry: none })(SEG, '/x', now)).toEqual({
      at: serverNow,
      source: 'unknown',
      storedAt: serverNow,
    });
  });

  it('an index entry with a way of finding its time this version does not know reads as unknown, not as unreadable', () => {
    const entry = { name: SEG, file: `${SEG}.zst`, bytes: 1, sha256: 'a'.repeat(64), rawBytes: 16777216, compression: 'zstd', encryption: 'none' };
    const at = { archivedAt: now.toISOString(), storedAt: now.toISOString() };
    expect(WalEntrySchema.parse({ ...entry, ...at, reachedBy: 'from the future' }).reachedBy).toBe('unknown');
    expect(WalEntrySchema.parse({ ...entry, ...at, reachedBy: 'sampled' }).reachedBy).toBe('sampled');
    expect(WalEntrySchema.parse({ ...entry, ...at }).reachedBy).toBeUndefined();
  });

  it('a backlog: the latest of its newest sample and the segment before; the time it is archived only when nothing is known', async () => {
    const stale = tracker([3600, end - 10n], [3598, end + 10n]);
    const before = entries({ '000000010000000000000004': ago(1800).toISOString() });
    expect(await segmentReach({ tracker: stale, pgWaldump: null, entry: before })(SEG, '/x', now)).toMatchObject({ at: ago(1800), source: 'segment before' });
    expect(await segmentReach({ tracker: stale, pgWaldump: null, entry: none })(SEG, '/x', now)).toMatchObject({ at: ago(3600), source: 'sampled' });
    // Every sample past it (the worker started during the backlog), no pg_waldump: the segment before.
    expect(await segmentReach({ tracker: tracker([10, end + 1n]), pgWaldump: null, entry: before })(SEG, '/x', now)).toMatchObject({
      at: ago(1800),
      source: 'segment before',
    });
    expect(await segmentReach({ tracker: new RpoTracker(), pgWaldump: null, entry: none })(SEG, '/x', now)).toMatchObject({ at: now, source: 'unknown' });
    // Never later than now, whatever a clock said.
    const ahead = entries({ '000000010000000000000004': new Date(now.getTime() + 5000).toISOString() });
    expect(await segmentReach({ tracker: new RpoTracker(), pgWaldump: null, entry: ahead })(SEG, '/x', now)).toMatchObject({
      at: now,
      source: 'segment before',
    });
  });
});
