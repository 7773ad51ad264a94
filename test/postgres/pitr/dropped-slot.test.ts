import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { startWalArchive, type WalArchiveState } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { completeSegment, slotActive } from '../../support/pitr-archive.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';

/**
 * The slot dropped by a DBA while the worker was stopped, and the WAL it held removed by the server. QA: every start
 * then failed with "requested WAL segment … has already been removed", the advice (move the spool aside) did not
 * help, since the slot pg_receivewal recreated pointed at the same removed WAL, and only dropping it by hand did.
 * Now the receiver sets the spool's partial segment aside, then drops the slot that still points there, and streams
 * again from the server's current position; the archive's gap is health's to page (wal-gap).
 */
describe('a replication slot dropped while the receiver was stopped', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let pgReceivewal: string;
  const slot = 'pgbb_dropped';
  const states: WalArchiveState[] = [];

  beforeAll(async () => {
    // Small WAL limits, so a checkpoint removes what no slot holds.
    source = await startEphemeralPostgres({ settings: { min_wal_size: '32MB', max_wal_size: '64MB', wal_keep_size: '0' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-dropped-'));
    const tools = await findPgTools({ serverMajor: 15 });
    pgReceivewal = (await findPgProgram('pg_receivewal', tools.pgDump, tools.major)) as string;
  }, 60_000);

  afterAll(async () => {
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const start = () =>
    startWalArchive({
      target: 'app',
      pgReceivewal,
      replicationUrl: source.url,
      slot,
      spool: join(dir, 'spool'),
      store: new LocalWalStore(join(dir, 'backups'), 'app'),
      zstd: 'zstd',
      level: 2,
      recipients: [],
      ageEngine: undefined,
      log: silentLog,
      sweepMs: 100,
      backoff: { minMs: 100, maxMs: 500 },
      upAfterMs: 500,
      onState: (s) => states.push(s),
    });

  const streaming = async () => ((await slotActive(source.url, slot)) ? true : undefined);

  const until = async <T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(states.at(-1))}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('sets the spool aside and streams again from the server’s position, with no hand on the server', async () => {
    const first = start();
    await until('the receiver streaming', streaming);
    const before = await completeSegment(source.url);
    await until(`${before} archived`, () => ((first.state().lastArchived?.name ?? '') >= before ? true : undefined));
    // Some WAL of the next segment received: the spool holds its partial file when the worker stops.
    await withClient(source.url, (c) => c.query('CREATE TABLE before_stop AS SELECT generate_series(1, 1000) AS n'));
    await until('a partial segment spooled', async () => ((await readdir(join(dir, 'spool'))).some((n) => n.endsWith('.partial')) ? true : undefined));
    await first.stop();

    // While it is stopped: the slot dropped, WAL written and switched past, and removed by checkpoints.
    await withClient(source.url, async (c) => {
      await c.query('SELECT pg_drop_replication_slot($1)', [slot]);
      await c.query('CREATE TABLE filler (n int, pad text)');
      // Until the segment the spool was writing is gone from the server (recycled at a checkpoint).
      const spooled = (await readdir(join(dir, 'spool'))).find((n) => n.endsWith('.partial'))?.slice(0, 24) ?? '';
      for (let i = 0; i < 20; i++) {
        await c.query("INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 40000) g");
        await c.query('SELECT pg_switch_wal()');
        await c.query('CHECKPOINT');
        const { rows } = await c.query<{ oldest: string }>("SELECT min(name) AS oldest FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'");
        if ((rows[0]?.oldest ?? '') > spooled) return;
      }
      throw new Error(`the server kept ${spooled}`);
    });

    states.length = 0;
    const second = start();
    try {
      // What it said on the way: the removed WAL named, and the spool's partial segment set aside (when the slot
      // itself still pointed there, the next start dropped it; here the slot pg_receivewal made at once is new).
      await until('the spool set aside', () => (states.some((s) => /set aside/.test(s.receiver.error ?? '')) ? true : undefined));
      expect(states.map((s) => s.receiver.error ?? '').find((e) => /set aside/.test(e))).toMatch(
        /^pg_receivewal stopped: the server no longer has WAL segment [0-9A-F]{24}, which the archive needs next .*The spool's [0-9A-F]{24}\.partial set aside/,
      );
      expect(await readdir(join(dir, 'spool', '.diverged'))).toEqual([expect.stringMatching(/^[0-9A-F]{24}\.partial\.\d+$/)]);
      // Streaming again: a segment completed now is archived, and the slot is back, at the server's position.
      await until('the receiver up', () => (second.state().receiver.up ? true : undefined));
      await until('the receiver streaming', streaming);
      const after = await completeSegment(source.url);
      await until(`${after} archived`, () => ((second.state().lastArchived?.name ?? '') >= after ? true : undefined));
      const restart = await withClient(source.url, async (c) => {
        const { rows } = await c.query<{ lsn: string }>('SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
        return rows[0]?.lsn;
      });
      expect(restart).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    } finally {
      await second.stop();
    }
  }, 120_000);
});
