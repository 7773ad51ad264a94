import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAgeEngine } from '../../../src/crypto/age-cli.ts';
import { createDecryptStream, generateKeyPair, loadIdentity } from '../../../src/crypto/age.ts';
import { asServerUser, type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { rpoCondition } from '../../../src/health/index.ts';
import { formatLsn, parseLsn } from '../../../src/postgres/pitr/lsn.ts';
import { positionSampler } from '../../../src/postgres/pitr/position-sampler.ts';
import { PartialWalStore } from '../../../src/postgres/pitr/partial-store.ts';
import { type RpoState, startRpoMonitor } from '../../../src/postgres/pitr/rpo-monitor.ts';
import { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { storedWalState } from '../../../src/workers/wal-archives.ts';
import { childProcesses, silentLog, withClient } from '../../support/postgres-helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The measured RPO on a server of its own (nothing else writes to it, so idle means idle): the segment being
 * received stored as a partial snapshot, RPO 0 once the archive holds what the server wrote, growing while the
 * receiver is frozen and writes go on (failing a 10 s objective), falling back to 0 when it thaws, and the
 * snapshot removed once its completed segment is archived.
 */
const SEGMENT = 16n * 1024n * 1024n;

describe('the RPO monitor', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let identityFile: string;
  let archive: ReturnType<typeof startWalArchive>;
  let monitor: ReturnType<typeof startRpoMonitor>;
  let partials: PartialWalStore;
  let store: LocalWalStore;
  const readings: RpoState[] = [];
  const slot = 'pgbb_rpo_test';
  /** Another monitor on the same archive, with other timings. */
  let monitorWith: (o: { partialEveryMs: number; onState?: (s: RpoState) => void }) => ReturnType<typeof startRpoMonitor>;

  beforeAll(async () => {
    // No autovacuum: nothing but the test writes WAL, so idle is idle.
    source = await startEphemeralPostgres({ settings: { autovacuum: 'off' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-rpo-'));
    const keys = await generateKeyPair();
    identityFile = join(dir, 'key.txt');
    await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
    const root = join(dir, 'backups');
    store = new LocalWalStore(root, 'app');
    partials = new PartialWalStore(root, 'app');
    const tools = await findPgTools({ serverMajor: 15 });
    const common = { store, zstd: 'zstd', level: 2, recipients: [keys.recipient], ageEngine: await findAgeEngine(), log: silentLog };
    const spool = join(dir, 'spool');
    archive = startWalArchive({
      ...common,
      target: 'app',
      pgReceivewal: (await findPgProgram('pg_receivewal', tools.pgDump, tools.major)) as string,
      replicationUrl: source.url,
      slot,
      spool,
      sweepMs: 100,
      backoff: { minMs: 100, maxMs: 500 },
    });
    monitorWith = ({ partialEveryMs, onState }) =>
      startRpoMonitor({
        ...common,
        target: 'app',
        url: source.url,
        slot,
        spool,
        partials,
        objectiveSeconds: 10,
        sampleMs: 200,
        partialEveryMs,
        newestArchived: () => archive.state().lastArchived?.name ?? null,
        receiverUp: () => archive.state().receiver.up,
        ...(onState ? { onState } : {}),
      });
    monitor = monitorWith({ partialEveryMs: 500, onState: (s) => readings.push(s) });
  }, 60_000);

  afterAll(async () => {
    await monitor?.stop();
    await archive?.stop();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const until = async <T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(monitor.state())} ${JSON.stringify(archive.state())}`);
      await sleep(100);
    }
  };
  const serverLsn = () => withClient(source.url, async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]?.l as string);
  const caughtUpTo = (lsn: string) =>
    until(`the archive at ${lsn} and RPO 0`, () => {
      const s = monitor.state();
      return s.archivedLsn && parseLsn(s.archivedLsn) >= parseLsn(lsn) && s.rpoMs === 0 ? s : undefined;
    });
  const judged = (s: RpoState) => rpoCondition('app', new Date(), storedWalState(archive.state(), 'test-host', s, 10));

  it('stores the segment being written as a partial snapshot, byte for byte the server’s WAL, and is 0 on an idle server', async () => {
    await until('the receiver', () => (archive.state().receiver.up ? true : undefined));
    await withClient(source.url, (c) => c.query("CREATE TABLE t (n int, note text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g; CHECKPOINT"));
    const written = await serverLsn();
    const s = await caughtUpTo(written);
    expect(judged(s)).toMatchObject({ status: 'ok', value: 0 });
    expect(judged(s).evidence).toMatch(/^0 s \(objective 10 s\): the archive holds everything the server has written/);

    const seg = await withClient(source.url, async (c) => (await c.query<{ n: string }>('SELECT pg_walfile_name($1) AS n', [written])).rows[0]?.n as string);
    const entry = await partials.entry(seg);
    expect(entry).toMatchObject({ name: seg, partial: true, rawBytes: 16 * 1024 * 1024, encryption: 'age' });
    expect(await store.entry(seg)).toBeNull();
    // What it holds is the server's own WAL up to where the receiver had flushed, then zeros to 16 MB.
    const stored = await buffer(partials.open(entry as NonNullable<typeof entry>));
    expect(createHash('sha256').update(stored).digest('hex')).toBe(entry?.sha256);
    const plain = await buffer(await createDecryptStream(Readable.from(stored), await loadIdentity(identityFile, 'test'), []));
    const segment = (await execa('zstd', ['-dc'], { input: plain, encoding: 'buffer' })).stdout as unknown as Buffer;
    const walBytes = entry?.walBytes as number;
    expect(segment.length).toBe(16 * 1024 * 1024);
    const onServer = await withClient(source.url, async (c) => {
      const { rows } = await c.query<{ h: string }>(`SELECT encode(sha256(pg_read_binary_file('pg_wal/' || $1, 0, $2)), 'hex') AS h`, [seg, walBytes]);
      return rows[0]?.h;
    });
    expect(createHash('sha256').update(segment.subarray(0, walBytes)).digest('hex')).toBe(onServer);
    expect(segment.subarray(walBytes).every((b) => b === 0)).toBe(true);

    // Idle: while the server writes nothing (its position as at the reading before), the RPO stays 0.
    const from = readings.length;
    await sleep(4000);
    const window = readings.slice(from - 1);
    const idle = window.slice(1).filter((r, i) => r.currentLsn === window[i]?.currentLsn && window[i]?.rpoMs === 0);
    expect(idle.length).toBeGreaterThan(5);
    for (const r of idle) expect(r.rpoMs).toBe(0);
  });

  it('reads an idle server standing at a segment’s start as caught up: the insert position is taken as the end of the last record', async () => {
    const sampler = positionSampler(source.url, slot);
    try {
      const [raw, sampled] = await withClient(source.url, async (c) => {
        await c.query("INSERT INTO t VALUES (2, 'before the switch')");
        await c.query('SELECT pg_switch_wal()');
        const row = (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0];
        return [parseLsn(row?.l as string), await sampler.sample()] as const;
      });
      // PostgreSQL's insert position at a segment's start points past its long page header (40 bytes).
      expect(raw % SEGMENT).toBe(40n);
      expect(sampled.current).toBe(raw - 40n);
      const s = await caughtUpTo(formatLsn(sampled.current));
      expect(judged(s)).toMatchObject({ status: 'ok', value: 0 });
    } finally {
      await sampler.close();
    }
  });

  it('grows while the receiver is frozen and writes go on, fails a 10 s objective, and falls back to 0 after', { timeout: 120_000 }, async () => {
    const receiver = (await childProcesses()).find(
      (p) => p.cmdline.includes('pg_receivewal') && p.cmdline.includes(`--slot=${slot}`) && !p.cmdline.includes('--create-slot'),
    );
    expect(receiver).toBeDefined();
    const pid = receiver?.pid as number;
    process.kill(pid, 'SIGSTOP');
    const from = readings.length;
    const firstWrite = Date.now();
    let snapshots: Awaited<ReturnType<typeof partials.list>> = [];
    try {
      const end = Date.now() + 13_000;
      while (Date.now() < end) {
        await withClient(source.url, (c) => c.query("INSERT INTO t VALUES (1, 'while frozen')"));
        await sleep(300);
      }
      snapshots = await partials.list();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // No snapshot claims to cover a moment after the writes the receiver never got began (the window ends there).
    for (const p of snapshots) expect(Date.parse(p.coversAt)).toBeLessThanOrEqual(firstWrite);
    const frozen = readings.slice(from, readings.length);
    const rpos = frozen.map((r) => r.rpoMs ?? -1);
    // The archive holds nothing new: the RPO only grows, past the objective; the worker's disk gets nothing either.
    for (let i = 1; i < rpos.length; i++) expect(rpos[i]).toBeGreaterThanOrEqual(rpos[i - 1] as number);
    const worst = frozen.at(-1) as RpoState;
    expect(worst.rpoMs).toBeGreaterThan(10_000);
    expect(parseLsn(worst.currentLsn as string)).toBeGreaterThan(parseLsn(worst.archivedLsn as string));
    // The slot's flushed position stood still all the while: what health calls a stalled receiver past its grace.
    const stillSince = worst.flushedMovedAt?.getTime() as number;
    expect(stillSince).toBeLessThanOrEqual(firstWrite + 2000);
    expect(storedWalState(archive.state(), 'test-host', worst, 10).flushedMovedAt).toBe(worst.flushedMovedAt?.toISOString());
    const failing = judged(worst);
    expect(failing.status).toBe('failing');
    expect(failing.summary).toMatch(/^The RPO of app is 1\d s, over its objective 10 s: that much committed data would be lost/);

    const written = await serverLsn();
    const back = await caughtUpTo(written);
    expect(judged(back)).toMatchObject({ status: 'ok', value: 0 });
    expect(back.flushedMovedAt?.getTime()).toBeGreaterThan(stillSince);
  });

  it('removes a partial snapshot once its completed segment is archived', async () => {
    const seg = await withClient(source.url, async (c) => {
      await c.query("INSERT INTO t VALUES (2, 'before the switch')");
      const { rows } = await c.query<{ n: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS n');
      return rows[0]?.n as string;
    });
    await until(`a partial snapshot of ${seg}`, async () => (await partials.entry(seg)) ?? undefined);
    await withClient(source.url, (c) => c.query('SELECT pg_switch_wal()'));
    await until(`${seg} archived whole`, async () => (await store.entry(seg)) ?? undefined);
    // Its entry, then its files: the current one and the one kept for a wal-fetch that had read the entry before.
    const files = async () => (await readdir(partials.dir)).filter((f) => f.startsWith(seg));
    await until(`the snapshot of ${seg} removed`, async () => ((await partials.entry(seg)) === null && (await files()).length === 0 ? true : undefined));
    expect((await partials.list()).every((p) => p.name > seg)).toBe(true);
    expect(await files()).toEqual([]);
  });

  // Last: it crashes the server (started again after, for afterAll).
  it('stores what the receiver wrote when the server crashes, though the server can no longer say how far it flushed (QA)', { timeout: 120_000 }, async () => {
    const pgCtl = async (...args: string[]) => {
      const user = await asServerUser();
      const bin = join(source.binDir, 'pg_ctl');
      await execa(user.prefix[0] ?? bin, [...user.prefix.slice(1), ...(user.prefix.length ? [bin] : []), ...args]);
    };
    // A monitor whose regular snapshots come every 10 minutes: after its first, only the last one can hold the commit.
    // On a segment begun after the older monitor stopped, so any snapshot of it is the new monitor's; small writes, so
    // the commit stays in it (a new segment's first snapshot is taken at once, whatever the interval).
    await monitor.stop();
    const current = await withClient(source.url, async (c) => {
      await c.query('SELECT pg_switch_wal()');
      await c.query("INSERT INTO t SELECT g, 'in the segment' FROM generate_series(1, 200) g");
      // The insert position (the write position may still stand at the segment's start, which names the one before).
      return (await c.query<{ seg: string }>('SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS seg')).rows[0]?.seg as string;
    });
    monitor = monitorWith({ partialEveryMs: 600_000 });
    await until('its first snapshot', async () => ((await partials.entry(current)) ? true : undefined));
    const { seg, lsn } = await withClient(source.url, async (c) => {
      await c.query("INSERT INTO t VALUES (3, 'the last commit before the crash')");
      const { rows } = await c.query<{ seg: string; lsn: string }>(
        'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS seg, pg_current_wal_insert_lsn()::text AS lsn',
      );
      return rows[0] as { seg: string; lsn: string };
    });
    expect(seg).toBe(current);
    // The receiver has it on disk (--synchronous) before the server goes.
    await until('the receiver to flush the commit', () => {
      const f = monitor.state().flushedLsn;
      return f && parseLsn(f) >= parseLsn(lsn) ? true : undefined;
    });
    await pgCtl('-D', source.dataDir, '-m', 'immediate', '-w', 'stop');
    try {
      const stored = await until(`a snapshot of ${seg} up to ${lsn}`, async () => {
        const e = await partials.entry(seg);
        return e && parseLsn(e.walEnd) >= parseLsn(lsn) ? e : undefined;
      });
      expect(monitor.state().error).toMatch(/could not be asked/);
      // Its time is a sample's, never later than the crash: the window claims nothing the server wrote after it.
      expect(Date.parse(stored.coversAt)).toBeLessThanOrEqual(Date.now());
    } finally {
      await pgCtl('-D', source.dataDir, '-l', join(source.dir, 'restart.log'), '-w', 'start');
    }
  });
});
