import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServerUser, type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { parseLsn } from '../../../src/postgres/pitr/lsn.ts';
import { PartialWalStore } from '../../../src/postgres/pitr/partial-store.ts';
import { startRpoMonitor } from '../../../src/postgres/pitr/rpo-monitor.ts';
import type { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { cli } from '../../support/app-backups.ts';
import { startTestArchive } from '../../support/pitr-archive.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';
import { recoveredMarkers } from '../../support/recovered-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A row committed into a segment the server has not finished (no switch, nothing fills 16 MB) is recovered by
 * restore-pitr: the archive holds it only as a partial snapshot, wal-fetch serves that under the segment's name,
 * and the recoverable window reaches its time.
 */
describe('restore-pitr from a partial segment', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let archive: ReturnType<typeof startWalArchive>;
  let monitor: ReturnType<typeof startRpoMonitor>;
  let env: Record<string, string>;
  const slot = 'pgbb_partial_test';

  beforeAll(async () => {
    // synchronous_commit on: a commit has reached the server's WAL, and pg_current_wal_lsn(), when INSERT returns.
    source = await startEphemeralPostgres({ settings: { full_page_writes: 'on', synchronous_commit: 'on' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-partial-'));
    const root = join(dir, 'backups');
    const spool = join(dir, 'spool');
    const test = await startTestArchive({ url: source.url, root, spool, target: 'app', slot });
    const { store } = test;
    archive = test.archive;
    const common = { ...test.common, log: silentLog };
    monitor = startRpoMonitor({
      ...common,
      store,
      target: 'app',
      url: source.url,
      slot,
      spool,
      partials: new PartialWalStore(root, 'app'),
      objectiveSeconds: 60,
      sampleMs: 200,
      partialEveryMs: 500,
      newestArchived: () => archive.state().lastArchived?.name ?? null,
      receiverUp: () => archive.state().receiver.up,
    });
    await withClient(source.url, (c) =>
      c.query("CREATE TABLE markers (label text, at timestamptz DEFAULT clock_timestamp()); INSERT INTO markers VALUES ('before-base')"),
    );
    await test.baseBackup();
    env = (await test.restoreEnv(dir)).env;
  }, 120_000);

  afterAll(async () => {
    await monitor?.stop();
    await archive?.stop();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('recovers a row that only a partial snapshot holds', async () => {
    await withClient(source.url, (c) => c.query("INSERT INTO markers VALUES ('in-partial')"));
    await sleep(1100);
    const target = new Date();
    await sleep(1100);
    const { lsn, segment } = await withClient(source.url, async (c) => {
      await c.query("INSERT INTO markers VALUES ('after')");
      const { rows } = await c.query<{ lsn: string; segment: string }>(
        'SELECT pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS segment',
      );
      return rows[0] as { lsn: string; segment: string };
    });
    const partials = new PartialWalStore(env.BACKUP_DIR as string, 'app');
    for (let i = 0; ; i++) {
      const p = await partials.entry(segment);
      if (p && parseLsn(p.walEnd) >= parseLsn(lsn)) break;
      if (i > 300) throw new Error(`no partial snapshot of ${segment} reached ${lsn}: ${JSON.stringify(monitor.state())}`);
      await sleep(100);
    }
    // Only the snapshot holds it: the segment itself is not complete, so not archived whole.
    expect(await new LocalWalStore(env.BACKUP_DIR as string, 'app').entry(segment)).toBeNull();

    // The archive stops here, so what the server's user is given to read below is all there is.
    await monitor.stop();
    await archive.stop();
    const dataDir = join(dir, 'restored');
    const user = await asServerUser();
    if (user.uid !== undefined) await execa('chmod', ['-R', 'a+rX', dir]);
    const run = await cli(['restore-pitr', 'app', `--time=${target.toISOString()}`, `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    const { labels, log: text } = await recoveredMarkers(dataDir);
    expect(labels).toEqual(['before-base', 'in-partial']);
    // The segment came from the snapshot, and recovery stopped at the commit after the time, found in it.
    expect(text).toMatch(new RegExp(`restored log file "${segment}" from archive`));
    expect(text).toMatch(/recovery stopping before commit of transaction \d+, time /);
  }, 180_000);
});
