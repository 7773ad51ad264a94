import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { findAgeEngine } from '../../../src/crypto/age-cli.ts';
import { createDecryptStream, generateKeyPair, loadIdentity } from '../../../src/crypto/age.ts';
import { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore, type WalEntry } from '../../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { childProcesses, silentLog, withClient } from '../../support/postgres-helpers.ts';

/** A segment's position in the WAL of its timeline (16 MB segments: 256 per log file). */
const segmentNumber = (name: string) => Number.parseInt(name.slice(8, 16), 16) * 0x100 + Number.parseInt(name.slice(16, 24), 16);

/**
 * The continuous WAL archive on a real server (wal_level=replica, the test setup's): pg_receivewal through a
 * slot of its own, each completed segment stored compressed and encrypted with its sha256 and index entry, the
 * stored bytes equal to the server's own segment, and no segment lost when the receiver is killed.
 */
describe('the WAL archive', () => {
  let dir: string;
  let store: LocalWalStore;
  let identityFile: string;
  const slot = `pgbb_test_${randomBytes(4).toString('hex')}`;
  let archive: ReturnType<typeof startWalArchive>;
  const server = () => inject('pgUrl');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-wal-'));
    const keys = await generateKeyPair();
    identityFile = join(dir, 'key.txt');
    await import('node:fs/promises').then((fs) => fs.writeFile(identityFile, keys.identityFileText, { mode: 0o600 }));
    store = new LocalWalStore(join(dir, 'backups'), 'app');
    const tools = await findPgTools({ serverMajor: 15 });
    const pgReceivewal = await findPgProgram('pg_receivewal', tools.pgDump, tools.major);
    if (!pgReceivewal) throw new Error('pg_receivewal is not installed');
    // What an earlier failover left in the spool: one set aside past the retention, one within it.
    await mkdir(join(dir, 'spool', '.diverged'), { recursive: true });
    for (const [name, days] of [
      ['000000010000000000000002.partial', 4],
      ['000000010000000000000003.partial', 1],
    ] as const) {
      const path = join(dir, 'spool', '.diverged', name);
      await writeFile(path, 'old primary');
      const t = new Date(Date.now() - days * 86_400_000);
      await utimes(path, t, t);
    }
    archive = startWalArchive({
      target: 'app',
      pgReceivewal,
      replicationUrl: server(),
      slot,
      spool: join(dir, 'spool'),
      store,
      zstd: 'zstd',
      level: 2,
      recipients: [keys.recipient],
      ageEngine: await findAgeEngine(),
      log: silentLog,
      sweepMs: 100,
      backoff: { minMs: 100, maxMs: 500 },
      upAfterMs: 1000,
      keepLeftoversMs: 3 * 86_400_000,
    });
  });
  afterAll(async () => {
    await archive?.stop();
    await withClient(server(), (c) => c.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot])).catch(
      () => undefined,
    );
    await rm(dir, { recursive: true, force: true });
  });

  const until = async <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(archive.state())}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** Writes a little, switches to a new segment, and returns the name of the one just completed. */
  const completeSegment = () =>
    withClient(server(), async (c) => {
      await c.query(`CREATE TABLE IF NOT EXISTS pgbb_wal_probe (at timestamptz DEFAULT now(), n int)`);
      await c.query('INSERT INTO pgbb_wal_probe (n) SELECT generate_series(1, 100)');
      // The segment the switch completed (or, with nothing written since the last switch, the one before).
      const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      return rows[0]?.name as string;
    });

  const archived = (name: string) => until(`WAL ${name} archived`, async () => (await store.list()).find((e) => e.name === name));

  /** The stored file, checked against its entry, decrypted and decompressed. */
  async function storedSegment(e: WalEntry): Promise<Buffer> {
    const stored = await buffer(store.open(e));
    expect(stored.length).toBe(e.bytes);
    expect(createHash('sha256').update(stored).digest('hex')).toBe(e.sha256);
    const identity = await loadIdentity(identityFile, 'test');
    const plain = await buffer(await createDecryptStream(Readable.from(stored), identity, []));
    return (await execa('zstd', ['-dc'], { input: plain, encoding: 'buffer' })).stdout as unknown as Buffer;
  }

  it('stores each completed segment compressed, encrypted and indexed, byte for byte the server’s own', async () => {
    await until('the receiver', async () => (archive.state().receiver.up ? true : undefined));
    // Streaming, not only started: its new slot reserves nothing until pg_receivewal first streams, and a segment
    // completed before that is never received (CI, a loaded machine: the receiver was "up" and the switch came first).
    await until('the receiver streaming from its slot', () =>
      withClient(server(), async (c) => {
        const { rows } = await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active AND restart_lsn IS NOT NULL', [slot]);
        return rows.length > 0 ? true : undefined;
      }),
    );
    // A slot of the test's own, reserving WAL from now: the server keeps the segment to compare with, however soon
    // the receiver confirms it and a checkpoint (other test files share this server) would recycle it.
    const hold = `${slot}_hold`;
    await withClient(server(), (c) => c.query('SELECT pg_create_physical_replication_slot($1, true)', [hold]));
    try {
      await heldSegmentCompared();
    } finally {
      await withClient(server(), (c) => c.query('SELECT pg_drop_replication_slot($1)', [hold]));
    }
  });

  async function heldSegmentCompared(): Promise<void> {
    const name = await completeSegment();
    const entry = await archived(name);
    expect(entry).toMatchObject({ name, compression: 'zstd', encryption: 'age', rawBytes: 16 * 1024 * 1024, file: `${name}.zst.age` });
    expect(entry.bytes).toBeLessThan(entry.rawBytes);
    const segment = await storedSegment(entry);
    expect(segment.length).toBe(16 * 1024 * 1024);
    // The server still holds it (the test's own slot keeps it).
    const onServer = await withClient(
      server(),
      async (c) => (await c.query<{ h: string }>(`SELECT encode(sha256(pg_read_binary_file('pg_wal/' || $1)), 'hex') AS h`, [name])).rows[0]?.h,
    );
    expect(createHash('sha256').update(segment).digest('hex')).toBe(onServer);
    // Nothing completed is left in the spool once archived.
    expect((await readFile(join(dir, 'spool', name)).catch(() => null)) === null).toBe(true);
  }

  it('loses nothing when pg_receivewal is killed: restarted, and the archive has every segment in order', { timeout: 180_000 }, async () => {
    const first = await completeSegment();
    await archived(first);
    const receiver = (await childProcesses()).find(
      (p) => p.cmdline.includes('pg_receivewal') && p.cmdline.includes(`--slot=${slot}`) && !p.cmdline.includes('--create-slot'),
    );
    expect(receiver).toBeDefined();
    process.kill(receiver?.pid as number, 'SIGKILL');
    await until('the receiver down', async () => (archive.state().receiver.up ? undefined : true), 30_000);
    // Written while it is down: the slot keeps it on the server until the receiver is back.
    const during = await completeSegment();
    // The server may take a moment to notice the killed connection and free the slot ("is active for PID …").
    await until('the receiver back up', async () => (archive.state().receiver.up ? true : undefined), 90_000);
    const last = await completeSegment();
    await archived(during);
    await archived(last);
    const names = (await store.list()).map((e) => e.name).filter((n) => !n.endsWith('.history'));
    const from = names.indexOf(first);
    const run = names.slice(from, names.indexOf(last) + 1).map(segmentNumber);
    // Other tests switch segments on this shared server too: the names move on, and no segment is missing.
    expect(segmentNumber(last)).toBeGreaterThan(segmentNumber(first));
    expect(run.length).toBe(segmentNumber(last) - segmentNumber(first) + 1);
    for (let i = 1; i < run.length; i++) expect(run[i]).toBe((run[i - 1] as number) + 1);
  });

  it('removes what failovers left in the spool once older than the retention, at its first sweep', async () => {
    for (let i = 0; i < 50 && (await readdir(join(dir, 'spool', '.diverged'))).length > 1; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await readdir(join(dir, 'spool', '.diverged'))).toEqual(['000000010000000000000003.partial']);
  });

  it('starts knowing the newest segment earlier runs archived, before archiving any itself (QA: "nothing archived yet" after a restart)', async () => {
    const newest = (await store.list()).filter((e) => !e.name.endsWith('.history')).at(-1);
    expect(newest).toBeDefined();
    // A restart whose receiver cannot reach the server: nothing new is archived, and the newest is still known.
    const again = startWalArchive({
      target: 'app',
      pgReceivewal: 'pg_receivewal',
      replicationUrl: 'postgres://nobody@127.0.0.1:1/x',
      slot,
      spool: join(dir, 'spool-2'),
      store,
      zstd: 'zstd',
      level: 2,
      recipients: [],
      ageEngine: undefined,
      log: silentLog,
      backoff: { minMs: 60_000, maxMs: 60_000 },
    });
    try {
      const known = await until('the newest archived known', async () => again.state().lastArchived ?? undefined, 10_000);
      expect(known.name).toBe(newest?.name);
      expect(known.at.toISOString()).toBe(newest?.storedAt ?? newest?.archivedAt);
    } finally {
      await again.stop({ sweep: false });
    }
  });
});
