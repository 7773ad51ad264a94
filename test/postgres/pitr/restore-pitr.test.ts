import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServerUser, type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import type { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { cli } from '../../support/app-backups.ts';
import { startTestArchive } from '../../support/pitr-archive.ts';
import { withClient } from '../../support/postgres-helpers.ts';
import { recoveredMarkers } from '../../support/recovered-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Point-in-time recovery end to end on real clusters: a source with the WAL archive streaming and a base backup,
 * rows written before and after a moment, `pg-backup-bot restore-pitr` to that moment into a new data directory,
 * a server started on it: the rows before are there, the row after is not.
 */
describe('restore-pitr', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let archive: ReturnType<typeof startWalArchive>;
  let env: Record<string, string>;
  const slot = 'pgbb_pitr_test';

  beforeAll(async () => {
    source = await startEphemeralPostgres({ settings: { full_page_writes: 'on' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pitr-'));
    const root = join(dir, 'backups');
    const test = await startTestArchive({ url: source.url, root, spool: join(dir, 'spool'), target: 'app', slot });
    archive = test.archive;
    await withClient(source.url, (c) =>
      c.query("CREATE TABLE markers (label text, at timestamptz DEFAULT clock_timestamp()); INSERT INTO markers VALUES ('before-1')"),
    );
    await test.baseBackup();
    env = (await test.restoreEnv(dir)).env;
    // The restored server runs restore_command as its own user: it must read the archive.
    if ((await asServerUser()).uid !== undefined) await execa('chmod', ['-R', 'a+rX', dir]);
  }, 120_000);

  afterAll(async () => {
    await archive?.stop();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('recovers to the moment asked: what was committed before it is there, what came after is not', async () => {
    await withClient(source.url, (c) => c.query("INSERT INTO markers VALUES ('before-2')"));
    await sleep(1100);
    const target = new Date();
    await sleep(1100);
    const last = await withClient(source.url, async (c) => {
      await c.query("INSERT INTO markers VALUES ('after')");
      // The segment the switch completed (or, with nothing written since the last switch, the one before).
      const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
      return rows[0]?.name as string;
    });
    const store = new LocalWalStore(env.BACKUP_DIR as string, 'app');
    for (let i = 0; !(await store.entry(last)); i++) {
      if (i > 600) throw new Error(`WAL ${last} never archived: ${JSON.stringify(archive.state())}`);
      await sleep(100);
    }
    // The user's words: a time with its offset. Without one it is refused.
    const noOffset = await cli(['restore-pitr', 'app', `--time=${target.toISOString().slice(0, 19).replace('T', ' ')}`, `--data-dir=${join(dir, 'x')}`], env);
    expect(noOffset.exitCode).toBe(1);
    expect(noOffset.stderr).toMatch(/has no UTC offset/);
    const outside = await cli(['restore-pitr', 'app', '--time=2020-01-01 00:00:00+00', `--data-dir=${join(dir, 'x')}`], env);
    expect(outside.stderr).toMatch(/is outside what the archive holds: the recoverable window is /);

    const dataDir = join(dir, 'restored');
    const run = await cli(['restore-pitr', 'app', `--time=${target.toISOString()}`, `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Laid out base backup app-base-/);
    // The source's port comes with its configuration: said, with how to pick another on the source's own host.
    expect(run.stdout).toContain(`It will listen on port ${new URL(env.APP_URL as string).port}, the source's setting: on a host where that port is taken`);

    // The WAL archived since the setup, readable by the server's user too.
    const { labels, log } = await recoveredMarkers(dataDir, [join(dir, 'backups')]);
    expect(labels).toEqual(['before-1', 'before-2']);
    expect(log).toMatch(/recovery stopping before commit of transaction \d+, time /);
    expect(log).not.toMatch(/recovery ended before configured recovery target was reached/);
  }, 180_000);
});
