import { mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgeIdentity, loadIdentity } from '../../../src/crypto/age.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { checkMarkers, MARGIN_MS, markerProblem, writeMarker } from '../../../src/postgres/pitr/markers.ts';
import { pitrReaders } from '../../../src/postgres/pitr/pitr-readers.ts';
import { type PitrTestOptions, runPitrTest } from '../../../src/postgres/pitr/pitr-test.ts';
import { listBaseBackups } from '../../../src/postgres/pitr/pitr-restore.ts';
import type { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { parseLsn } from '../../../src/postgres/pitr/lsn.ts';
import { PartialWalStore } from '../../../src/postgres/pitr/partial-store.ts';
import { startRpoMonitor } from '../../../src/postgres/pitr/rpo-monitor.ts';
import { startTestArchive } from '../../support/pitr-archive.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The PITR restore test on real clusters: a source streaming its WAL into the archive, a base backup, markers
 * written before and after a moment; runPitrTest recovers a scratch cluster to that moment and judges it.
 */
describe('runPitrTest', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let root: string;
  let identity: AgeIdentity;
  let archive: ReturnType<typeof startWalArchive>;
  let test: Awaited<ReturnType<typeof startTestArchive>>;
  const label = `t${process.pid}`;

  /** Ends the current segment and waits until the archive holds it. */
  async function switchAndWait(): Promise<void> {
    const name = await withClient(source.url, async (c) => {
      // The segment the switch completed (or, with nothing written since the last switch, the one before).
      const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      return rows[0]?.name as string;
    });
    const store = new LocalWalStore(root, 'app');
    for (let i = 0; !(await store.entry(name)); i++) {
      if (i > 600) throw new Error(`WAL ${name} never archived: ${JSON.stringify(archive.state())}`);
      await sleep(100);
    }
  }

  const options = (asked: string): PitrTestOptions => ({
    target: 'app',
    root,
    asked,
    identity,
    sourceUrl: source.url,
    markers: true,
    heapallindexed: false,
    label,
    log: silentLog,
  });

  const leftovers = async () => (await readdir(tmpdir())).filter((n) => n.startsWith(`pgbb-pitr-test-${label}-`));

  beforeAll(async () => {
    source = await startEphemeralPostgres({ settings: { full_page_writes: 'on' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pitrtest-'));
    root = join(dir, 'backups');
    test = await startTestArchive({ url: source.url, root, spool: join(dir, 'spool'), target: 'app', slot: 'pgbb_pitrtest' });
    archive = test.archive;
    await writeFile(join(dir, 'key.txt'), test.keys.identityFileText, { mode: 0o600 });
    identity = await loadIdentity(join(dir, 'key.txt'), 'test');
    await writeMarker(source.url, 7);
    await withClient(source.url, (c) =>
      c.query('CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 500) g'),
    );
    await test.baseBackup();
  }, 120_000);

  afterAll(async () => {
    await archive?.stop();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('recovers to a moment between two markers: those before are there, the one after is not, every check named', async () => {
    await writeMarker(source.url, 7);
    await sleep(2600);
    const target = new Date();
    await sleep(1000);
    await writeMarker(source.url, 7);
    await switchAndWait();
    const phases: string[] = [];
    // While it reads the base backup and its WAL, retention is told to leave them alone (pitr-readers.ts).
    const holds: string[][] = [];
    const out = await runPitrTest({
      ...options(target.toISOString()),
      onPhase: (p) => {
        phases.push(p);
        if (p === 'fetching WAL') void pitrReaders(root, 'app').then((r) => holds.push(r.active.map((h) => h.baseId)));
      },
    });
    expect(holds).toEqual([[out.baseId]]);
    expect((await pitrReaders(root, 'app')).active).toEqual([]);
    expect(
      out.checks.map((c) => [c.name, c.ok]),
      JSON.stringify(out.checks, null, 1),
    ).toEqual([
      ['WAL archive', true],
      ['base backup (pg_verifybackup)', true],
      ['recovery reached its target', true],
      ['pg_amcheck, every database', true],
      ['exact point (markers)', true],
    ]);
    expect(out.passed).toBe(true);
    expect(out.at).toBe(target.toISOString());
    expect(out.checks[2]?.detail).toMatch(/recovery stopping before commit of transaction \d+, time /);
    expect(out.checks[4]?.detail).toMatch(/^2 marker\(s\) written before the target present, 1 written after it absent/);
    expect(out.rtoMs).toBe(out.phasesMs.fetch + out.phasesMs.replay + out.phasesMs.checks);
    expect(out.phasesMs.fetch).toBeGreaterThan(0);
    expect(out.phasesMs.replay).toBeGreaterThan(0);
    expect(phases).toContain('fetching WAL');
    expect(out.scratchRemoved).toBe(true);
    expect(await leftovers()).toEqual([]);
  }, 180_000);

  it('refuses a time beyond the window, naming it, and a time without an offset', async () => {
    await expect(runPitrTest(options('2099-01-01 00:00:00+00'))).rejects.toThrow(/is outside what the archive holds: the recoverable window is \S+ to \S+/);
    await expect(runPitrTest(options('2026-12-03 14:30:00'))).rejects.toThrow(/has no UTC offset/);
    await expect(runPitrTest(options('garbage'))).rejects.toThrow('"garbage" is not a time: say "2026-12-03 14:30:00+01" (date, time and UTC offset).');
    expect(await leftovers()).toEqual([]);
  });

  it('`latest` recovers to just before the newest commit archived, and passes', async () => {
    await writeMarker(source.url, 7);
    await switchAndWait();
    const out = await runPitrTest(options('latest'));
    expect(out.passed, JSON.stringify(out.checks, null, 1)).toBe(true);
    expect(out.checks.find((c) => c.name === 'exact point (markers)')?.ok, JSON.stringify(out.checks.find((c) => c.name === 'exact point (markers)'))).toBe(
      true,
    );
    expect(await leftovers()).toEqual([]);
  }, 180_000);

  it('a time no commit follows recovers to the newest commit, and passes (it failed "the archive does not reach the moment asked")', async () => {
    await writeMarker(source.url, 7);
    await sleep(2600);
    const quiet = new Date();
    await sleep(300);
    await switchAndWait();
    const out = await runPitrTest(options(quiet.toISOString()));
    expect(out.passed, JSON.stringify(out.checks, null, 1)).toBe(true);
    expect(out.at).toBe(quiet.toISOString());
    expect(out.checks.find((c) => c.name === 'recovery reached its target')?.detail).toMatch(/recovery stopping after WAL location \(LSN\) /);
    expect(out.checks.find((c) => c.name === 'exact point (markers)')?.ok, JSON.stringify(out.checks.find((c) => c.name === 'exact point (markers)'))).toBe(
      true,
    );
    expect(await leftovers()).toEqual([]);
  }, 180_000);

  it('`latest` reaches into the segment still being written, as far as its newest snapshot, as `/backup list` shows', async () => {
    await switchAndWait();
    // The worker's RPO monitor stores snapshots of the segment pg_receivewal is writing (partial-archiver.ts).
    const partials = new PartialWalStore(root, 'app');
    const monitor = startRpoMonitor({
      ...test.common,
      store: test.store,
      target: 'app',
      url: source.url,
      slot: 'pgbb_pitrtest',
      spool: join(dir, 'spool'),
      partials,
      objectiveSeconds: 4,
      newestArchived: () => archive.state().lastArchived?.name ?? null,
      receiverUp: () => archive.state().receiver.up,
      log: silentLog,
      sampleMs: 200,
      partialEveryMs: 500,
    });
    let written = new Date();
    try {
      await writeMarker(source.url, 7);
      // Past the markers check's margin (MARGIN_MS): the first marker then proves replay got to the target.
      await sleep(MARGIN_MS + 500);
      written = new Date();
      await writeMarker(source.url, 7);
      const markerEnd = parseLsn(
        await withClient(source.url, async (c) => (await c.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l as string),
      );
      // No switch: this WAL is only in the segment being written, and in its snapshot once taken (one reaching the marker).
      for (let i = 0; !(await partials.list()).some((p) => parseLsn(p.walEnd) >= markerEnd); i++) {
        if (i > 300) throw new Error(`no snapshot of the partial segment: ${JSON.stringify(monitor.state())}`);
        await sleep(100);
      }
    } finally {
      await monitor.stop();
    }
    const newestWhole = (await new LocalWalStore(root, 'app').list()).filter((e) => !e.name.endsWith('.history')).at(-1);
    const out = await runPitrTest(options('latest'));
    expect(out.passed, JSON.stringify(out.checks, null, 1)).toBe(true);
    // Past the newest whole segment, up to the last marker written (it is the newest commit: `latest` stops before it).
    expect(Date.parse(out.at as string)).toBeGreaterThan(written.getTime());
    expect(Date.parse(out.at as string)).toBeGreaterThan(Date.parse(newestWhole?.archivedAt ?? ''));
    expect(out.checks[0]?.detail).toMatch(/, the last the segment still being written, as far as it reached at /);
    expect(out.checks.find((c) => c.name === 'exact point (markers)')?.ok, JSON.stringify(out.checks.find((c) => c.name === 'exact point (markers)'))).toBe(
      true,
    );
    expect(await leftovers()).toEqual([]);
  }, 180_000);

  it('`random` (the first-Saturday test) recovers to a moment of the window no later than the newest commit, and passes', async () => {
    const out = await runPitrTest({ ...options('random'), random: () => 0.999 });
    expect(out.passed, JSON.stringify(out.checks, null, 1)).toBe(true);
    const base = (await listBaseBackups(root, 'app')).find((b) => b.id === out.baseId);
    expect(Date.parse(out.at as string)).toBeGreaterThan(Date.parse(base?.finishedAt ?? ''));
    expect(out.checks.find((c) => c.name === 'recovery reached its target')?.detail).toMatch(/recovery stopping before commit/);
  }, 180_000);

  it('removes the scratch cluster when the job is cancelled mid-replay', async () => {
    const stop = new AbortController();
    const run = runPitrTest({
      ...options('latest'),
      signal: stop.signal,
      onPhase: (p) => {
        if (p.startsWith('replaying WAL')) stop.abort(new Error('cancelled by the test'));
      },
    });
    await expect(run).rejects.toThrow(/cancelled by the test/);
    expect(await leftovers()).toEqual([]);
  }, 180_000);

  it('a role that may not create the markers gets one sentence with the fix, and the check is then not run, never passed', async () => {
    await withClient(source.url, (c) => c.query('CREATE ROLE limited LOGIN; REVOKE ALL ON SCHEMA pgbb_pitr FROM limited'));
    const limitedUrl = source.url.replace('postgres://postgres@', 'postgres://limited@');
    const err = await writeMarker(limitedUrl, 7).then(
      () => null,
      (e: unknown) => e,
    );
    expect(markerProblem(err, 'app')).toMatch(
      /^Markers for app cannot be written: the bot's role may not create the schema pgbb_pitr or its table \(permission denied.*set `pitr.markers: false`/,
    );
    const check = await checkMarkers({
      sourceUrl: source.url.replace(/\/postgres$/, '/template1'),
      restored: () => Promise.reject(new Error('not reached')),
      at: new Date(),
      since: new Date(0),
    });
    expect(check).toMatchObject({ ok: null, detail: expect.stringMatching(/^not run: the source has no pgbb_pitr.markers/) });
    const off = await runPitrTest({ ...options('latest'), markers: false });
    expect(off.checks.find((c) => c.name === 'exact point (markers)')).toEqual({
      name: 'exact point (markers)',
      ok: null,
      detail: 'not run: markers are off for this target (pitr.markers: false)',
    });
  }, 180_000);

  it('names the newest marker before the target, past ten of them (by time, not by the id as text)', async () => {
    for (let i = 0; i < 12; i++) await writeMarker(source.url, 7);
    const newest = await withClient(source.url, async (c) => (await c.query<{ at: Date }>('SELECT max(at) AS at FROM pgbb_pitr.markers')).rows[0]?.at);
    const at = new Date(Date.now() + MARGIN_MS + 1000);
    const check = await checkMarkers({ sourceUrl: source.url, restored: (fn) => withClient(source.url, fn), at, since: new Date(0) });
    expect(check.ok).toBe(true);
    expect(check.detail).toContain(`newest expected written ${(newest as Date).toISOString()}`);
  });

  it('a silence in the source’s markers before the target leaves that stretch unproven, said with its length (QA: ✅ on 83 s unchecked)', async () => {
    await writeMarker(source.url, 7);
    // The target 2 minutes after the newest marker, with markers every 10 s: the source wrote none in between (a moment
    // of a timeline it left at a promotion looks so).
    const newest = await withClient(source.url, async (c) => (await c.query<{ at: Date }>('SELECT max(at) AS at FROM pgbb_pitr.markers')).rows[0]?.at as Date);
    const at = new Date(newest.getTime() + 120_000);
    const check = await checkMarkers({ sourceUrl: source.url, restored: (fn) => withClient(source.url, fn), at, since: new Date(0), everyMs: 10_000 });
    expect(check.ok).toBeNull();
    expect(check.detail).toMatch(
      /^not proven for the last 2 min 0 s before the target: the source holds no marker written then \(markers every 10\.0 s; a moment on a timeline it left at a promotion, or a marker writer that was stopped\); \d+ marker\(s\) before that present, 0 after the target absent \(newest expected written /,
    );
    // Markers as often as written, up to the target: proven.
    const close = await checkMarkers({
      sourceUrl: source.url,
      restored: (fn) => withClient(source.url, fn),
      at: new Date(newest.getTime() + MARGIN_MS + 5_000),
      since: new Date(0),
      everyMs: 10_000,
    });
    expect(close.ok).toBe(true);
  });

  it('markers only after the target prove nothing about reaching it: the check is then not passed', async () => {
    await writeMarker(source.url, 7);
    const at = new Date(Date.now() - 5_000);
    const check = await checkMarkers({
      sourceUrl: source.url,
      // A copy that holds none of them: nothing went past the target, and nothing shows it got there either.
      restored: (fn) => withClient(source.url.replace(/\/postgres$/, '/template1'), fn),
      at,
      since: at,
    });
    expect(check.ok).toBeNull();
    expect(check.detail).toMatch(
      /^not proven: no marker was written between .+ and the target, so nothing shows that replay reached it \(\d+ written after it absent\)$/,
    );
  });

  it('a source whose marker table was replaced since (a replacement restored it, its ids started over) is not judged, never failed (QA)', async () => {
    for (let i = 0; i < 3; i++) await writeMarker(source.url, 7);
    const copyDb = `markers_copy_${process.pid}`;
    await withClient(source.url, (c) => c.query(`CREATE DATABASE ${copyDb}`));
    const copyUrl = source.url.replace(/\/postgres$/, `/${copyDb}`);
    try {
      // The copy as a recovery at an earlier moment has it: the same ids, written at other times than the source's now.
      const rows = await withClient(
        source.url,
        async (c) => (await c.query<{ id: string; at: Date }>('SELECT id::text AS id, at FROM pgbb_pitr.markers')).rows,
      );
      await withClient(copyUrl, async (c) => {
        await c.query('CREATE SCHEMA pgbb_pitr; CREATE TABLE pgbb_pitr.markers (id bigint PRIMARY KEY, at timestamptz NOT NULL)');
        for (const r of rows) await c.query('INSERT INTO pgbb_pitr.markers VALUES ($1, $2)', [r.id, new Date(r.at.getTime() - 3_600_000)]);
      });
      const check = await checkMarkers({
        sourceUrl: source.url,
        restored: (fn) => withClient(copyUrl, fn),
        at: new Date(Date.now() - 10_000),
        since: new Date(0),
      });
      expect(check.ok).toBeNull();
      expect(check.detail).toMatch(
        /^not judged: \d+ marker\(s\) of the source have another time than the same marker in the copy .*was replaced since the target/,
      );
    } finally {
      await withClient(source.url, (c) => c.query(`DROP DATABASE ${copyDb} WITH (FORCE)`));
    }
  });

  it('fails, naming the gap, when a segment is missing from the archive', async () => {
    await writeMarker(source.url, 7);
    await switchAndWait();
    await writeMarker(source.url, 7);
    await switchAndWait();
    const store = new LocalWalStore(root, 'app');
    const segments = (await store.list()).filter((e) => !e.name.endsWith('.history'));
    const victim = segments.at(-2);
    if (!victim) throw new Error('fewer than two segments archived');
    await unlink(join(store.dir, victim.file));
    await unlink(join(store.dir, `${victim.name}.json`));
    const out = await runPitrTest(options('latest'));
    expect(out.passed).toBe(false);
    expect(out.checks[0]).toMatchObject({ name: 'WAL archive', ok: false });
    expect(out.checks[0]?.detail).toContain(`segment ${victim.name} is missing from the archive`);
    expect(await leftovers()).toEqual([]);
  }, 180_000);
});
