import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { PartialWalStore } from '../../../src/postgres/pitr/partial-store.ts';
import { recoverableWal } from '../../../src/postgres/pitr/partial-store.ts';
import { RpoTracker } from '../../../src/postgres/pitr/rpo.ts';
import { startRpoMonitor } from '../../../src/postgres/pitr/rpo-monitor.ts';
import { segmentReach } from '../../../src/postgres/pitr/segment-time.ts';
import { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore, type WalEntry } from '../../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';
import { until } from '../../support/until.ts';

/**
 * A live segment's time, as the worker stamps it (the RPO monitor's samples, shared with the archive, and one more
 * sample as the segment is archived), on a server of its own so that idle means idle. QA: stamped with the time it
 * was archived, a busy server's segment claimed the second after its switch, whose commits were in the next segment.
 */
describe('the time a live WAL segment reaches', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let store: LocalWalStore;
  let root: string;
  let archive: ReturnType<typeof startWalArchive>;
  let monitor: ReturnType<typeof startRpoMonitor>;

  beforeAll(async () => {
    source = await startEphemeralPostgres({ settings: { autovacuum: 'off' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-live-'));
    root = join(dir, 'backups');
    store = new LocalWalStore(root, 'app');
    const tools = await findPgTools({ serverMajor: 15 });
    const common = { store, zstd: 'zstd', level: 1, recipients: [], ageEngine: undefined, log: silentLog };
    const [slot, spool, tracker] = ['pgbb_live_test', join(dir, 'spool'), new RpoTracker()];
    archive = startWalArchive({
      ...common,
      target: 'app',
      pgReceivewal: (await findPgProgram('pg_receivewal', tools.pgDump, tools.major)) as string,
      replicationUrl: source.url,
      slot,
      spool,
      sweepMs: 100,
      backoff: { minMs: 100, maxMs: 500 },
      reachedAt: segmentReach({ tracker, pgWaldump: null, entry: (n) => store.entry(n), sampleNow: () => monitor.sample() }),
    });
    monitor = startRpoMonitor({
      ...common,
      target: 'app',
      url: source.url,
      slot,
      spool,
      partials: new PartialWalStore(root, 'app'),
      objectiveSeconds: 3600,
      sampleMs: 200,
      // Never due again after the first: a snapshot after that is a new segment's first, taken at once.
      partialEveryMs: 600_000,
      newestArchived: () => archive.state().lastArchived?.name ?? null,
      receiverUp: () => archive.state().receiver.up,
      tracker,
    });
    const streaming = () =>
      withClient(source.url, async (c) => {
        const { rows } = await c.query<{ ok: boolean }>('SELECT active AND restart_lsn IS NOT NULL AS ok FROM pg_replication_slots WHERE slot_name = $1', [
          slot,
        ]);
        return rows[0]?.ok ? true : undefined;
      });
    await until('the receiver streaming', streaming);
    await withClient(source.url, (c) => c.query('CREATE TABLE t (n int)'));
  }, 60_000);

  afterAll(async () => {
    await monitor?.stop();
    await archive?.stop();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const archived = (name: string) => until(`WAL ${name} archived`, async () => (await store.list()).find((e) => e.name === name));

  /** A commit, then a switch: the segment it completes, the switch's time and where the server stands after it. */
  const commitAndSwitch = () =>
    withClient(source.url, async (c) => {
      await c.query('INSERT INTO t VALUES (1)');
      const { rows } = await c.query<{ name: string; t: Date }>('SELECT pg_walfile_name(pg_switch_wal()) AS name, clock_timestamp() AS t');
      return { name: rows[0]?.name as string, switched: rows[0]?.t as Date };
    });
  const insertLsn = () => withClient(source.url, async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l);

  it('a server that went on writing: no later than its first commit after the switch, however late the segment is archived', async () => {
    for (let i = 0; i < 3; i++) {
      const { name } = await commitAndSwitch();
      // The next commit, in the next segment: the segment must not claim its time.
      const committedBy = await withClient(source.url, async (c) => {
        await c.query('INSERT INTO t VALUES (2)');
        return (await c.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0]?.t as Date;
      });
      const e = await archived(name);
      expect(e.reachedBy).toBe('sampled');
      expect(Date.parse(e.archivedAt)).toBeLessThan(committedBy.getTime());
      // It was archived after that commit: the time it was stored opens a base backup's window, never its end.
      expect(Date.parse(e.storedAt as string)).toBeGreaterThan(committedBy.getTime());
    }
  });

  it('a server that wrote a little past a segment: the next one’s first snapshot is taken at once, reaching past the time the segment was stored', async () => {
    // As after a base backup: PostgreSQL logs a record just after pg_backup_stop's switch, the end segment then reaches
    // only its last sample before the switch, and the window opens with the WAL archived after it.
    for (let i = 0; i < 2; i++) {
      const { name } = await commitAndSwitch();
      await withClient(source.url, (c) => c.query('INSERT INTO t VALUES (3)'));
      const e = await archived(name);
      const next = await until(
        `a snapshot of the segment after ${name}`,
        async () => {
          const wal = await recoverableWal(root, 'app');
          const newest = wal.at(-1);
          return newest && 'partial' in newest && newest.name > name && Date.parse(newest.archivedAt) >= Date.parse(e.storedAt as string) ? newest : undefined;
        },
        8000,
      );
      expect(next.storedAt).toBeDefined();
    }
  });

  it('an idle server standing at its end: everything up to the time it is archived', async () => {
    // PostgreSQL's background writer logs a snapshot of running transactions at most every 15 s after a write: a
    // switch it follows within the second before the sample is not idle. Tried again then, at most twice.
    let idle: { e: WalEntry; switched: Date } | undefined;
    for (let i = 0; i < 3 && !idle; i++) {
      const { name, switched } = await commitAndSwitch();
      const before = await insertLsn();
      const e = await archived(name);
      if ((await insertLsn()) === before) idle = { e, switched };
    }
    expect(idle).toBeDefined();
    const { e, switched } = idle as { e: WalEntry; switched: Date };
    expect(e.reachedBy).toBe('sampled');
    // Past the switch (a sample before it never is): the sample taken as it was archived found the server at its end.
    expect(Date.parse(e.archivedAt)).toBeGreaterThanOrEqual(switched.getTime());
    // Never past the time it was stored (by the server's clock, as the worker estimates it: a few ms apart at most).
    expect(Date.parse(e.archivedAt)).toBeLessThanOrEqual(Date.parse(e.storedAt as string));
  });
});
