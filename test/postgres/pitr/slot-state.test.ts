import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { walSlotCondition } from '../../../src/health/wal-conditions.ts';
import { readSlot } from '../../../src/postgres/pitr/slot-state.ts';
import { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';

const MB = 1024 * 1024;

/**
 * The slot as the health check reads it, on a server of its own: while pg_receivewal consumes it, it holds next to
 * nothing; once the receiver is stopped and the server writes on, it holds that WAL, and past a small limit
 * `wal-slot` fails with both figures and a value for max_slot_wal_keep_size (unlimited on a default server).
 */
describe('the archive’s replication slot', () => {
  let pg: EphemeralPostgres;
  let dir: string;
  const slot = `pgbb_slot_${randomBytes(3).toString('hex')}`;
  let archive: ReturnType<typeof startWalArchive> | undefined;

  beforeAll(async () => {
    pg = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-slot-'));
  });
  afterAll(async () => {
    await archive?.stop();
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const switchWal = () =>
    withClient(pg.url, async (c) => {
      await c.query('CREATE TABLE IF NOT EXISTS probe (n int)');
      await c.query('INSERT INTO probe SELECT generate_series(1, 1000)');
      await c.query('SELECT pg_switch_wal()');
    });

  it('reads a missing slot as missing', async () => {
    const r = await readSlot(pg.url, slot);
    expect(r).toMatchObject({ exists: false, active: false, retainedBytes: null, keepSizeMb: -1 });
    expect(walSlotCondition('app', { name: slot, limitBytes: 32 * MB, ...r }).status).toBe('failing');
  });

  it('holds little while the receiver runs, and fails past the limit once it is stopped and the server writes on', async () => {
    const tools = await findPgTools({ serverMajor: 15 });
    const pgReceivewal = await findPgProgram('pg_receivewal', tools.pgDump, tools.major);
    if (!pgReceivewal) throw new Error('pg_receivewal is not installed');
    archive = startWalArchive({
      target: 'app',
      pgReceivewal,
      replicationUrl: pg.url,
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
    });
    const end = Date.now() + 30_000;
    let running = await readSlot(pg.url, slot);
    while (!(running.exists && running.active) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      running = await readSlot(pg.url, slot);
    }
    await switchWal();
    await new Promise((r) => setTimeout(r, 500));
    running = await readSlot(pg.url, slot);
    expect(running).toMatchObject({ exists: true, active: true, walStatus: 'reserved' });
    expect(running.retainedBytes).toBeLessThan(32 * MB);
    expect(walSlotCondition('app', { name: slot, limitBytes: 32 * MB, ...running }).status).toBe('ok');

    await archive.stop();
    archive = undefined;
    for (let i = 0; i < 3; i++) await switchWal();
    const stopped = await readSlot(pg.url, slot);
    expect(stopped).toMatchObject({ exists: true, active: false, keepSizeMb: -1 });
    expect(stopped.retainedBytes).toBeGreaterThan(32 * MB);
    const r = walSlotCondition('app', { name: slot, limitBytes: 32 * MB, ...stopped });
    expect(r).toMatchObject({ status: 'failing', severity: 'critical', value: stopped.retainedBytes });
    expect(r.evidence).toMatch(
      new RegExp(`^slot ${slot} holds [\\d.]+ MB of WAL on the server, over the limit of 32\\.0 MB \\(pitr\\.slotMaxBytes\\); no receiver is connected`),
    );
    expect(r.evidence).toContain("ALTER SYSTEM SET max_slot_wal_keep_size = '128MB'");
  });

  it('says lost, with what to do, once the server gives the slot’s WAL up', async () => {
    // A cap below what the slot holds: the next checkpoint invalidates it, as on a server with a full WAL disk.
    await withClient(pg.url, async (c) => {
      await c.query("ALTER SYSTEM SET max_slot_wal_keep_size = '16MB'");
      await c.query('SELECT pg_reload_conf()');
    });
    await switchWal();
    await withClient(pg.url, (c) => c.query('CHECKPOINT'));
    const lost = await readSlot(pg.url, slot);
    expect(lost).toMatchObject({ exists: true, walStatus: 'lost', keepSizeMb: 16 });
    const r = walSlotCondition('app', { name: slot, limitBytes: 32 * MB, ...lost });
    expect(r.status).toBe('failing');
    expect(r.evidence).toContain('the archive has a gap');
    expect(r.evidence).not.toContain('ALTER SYSTEM SET');
  });
});
