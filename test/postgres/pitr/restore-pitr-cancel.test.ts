import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import type { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { cli } from '../../support/app-backups.ts';
import { startTestArchive } from '../../support/pitr-archive.ts';
import { withClient } from '../../support/postgres-helpers.ts';
import { readableByServer } from '../../support/recovered-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pids of `pid`'s children and theirs. */
async function descendants(pid: number): Promise<number[]> {
  const r = await execa('ps', ['-o', 'pid=', '--ppid', String(pid)], { reject: false });
  const kids = r.stdout.split('\n').map(Number).filter(Boolean);
  return [...kids, ...(await Promise.all(kids.map(descendants))).flat()];
}

const alive = (pid: number) => execa('kill', ['-0', String(pid)], { reject: false }).then((r) => r.exitCode === 0);

/**
 * restore-pitr canceled (Ctrl-C, SIGTERM) while it unpacks: its tools stop, what it laid out goes (the directory it
 * made, or what it wrote into the empty one it was given), its hold on the base backup is released, one sentence.
 * Before, it died at once, leaving the half-unpacked cluster, the hold and zstd/tar running.
 */
describe('restore-pitr canceled', () => {
  let source: EphemeralPostgres;
  let dir: string;
  let archive: ReturnType<typeof startWalArchive>;
  let env: Record<string, string>;

  beforeAll(async () => {
    source = await startEphemeralPostgres({ settings: { full_page_writes: 'on' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pitr-cancel-'));
    const root = join(dir, 'backups');
    const test = await startTestArchive({ url: source.url, root, spool: join(dir, 'spool'), target: 'app', slot: 'pgbb_pitr_cancel' });
    archive = test.archive;
    // Some 100 MB of cluster, so the unpack lasts long enough to be interrupted.
    await withClient(source.url, (c) => c.query('CREATE TABLE filler AS SELECT md5(random()::text) AS m FROM generate_series(1, 1500000)'));
    await test.baseBackup();
    const last = await withClient(
      source.url,
      async (c) => (await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0]?.name as string,
    );
    for (let i = 0; !(await test.store.entry(last)); i++) {
      if (i > 600) throw new Error(`WAL ${last} never archived`);
      await sleep(100);
    }
    env = (await test.restoreEnv(dir)).env;
    await readableByServer([dir]);
  }, 180_000);

  afterAll(async () => {
    await archive?.stop();
    await source?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** restore-pitr into `dataDir`, sent `signal` once the unpack has written into it. */
  async function interrupted(dataDir: string, signal: 'SIGINT' | 'SIGTERM') {
    const child = execa('node', ['bin/pg-backup-bot.js', 'restore-pitr', 'app', '--time=latest', `--data-dir=${dataDir}`], {
      env: { PATH: process.env.PATH ?? '', ...env },
      extendEnv: false,
      reject: false,
    });
    const end = Date.now() + 60_000;
    while ((await readdir(dataDir).catch(() => [])).length === 0 && child.exitCode === null && Date.now() < end) await sleep(5);
    const tools = await descendants(child.pid as number);
    child.kill(signal);
    const run = await child;
    const left = (await Promise.all(tools.map(async (p) => ((await alive(p)) ? p : null)))).filter((p) => p !== null);
    return { run, tools, left };
  }

  const holds = async () => (await readdir(join(env.BACKUP_DIR as string, 'app', '_pitr-readers')).catch(() => [])).filter((f) => f.endsWith('.json'));

  it('Ctrl-C during the unpack removes the directory it made, releases its hold, stops its tools, says so, exits 130', async () => {
    const dataDir = join(dir, 'made', 'cluster');
    const { run, tools, left } = await interrupted(dataDir, 'SIGINT');
    expect(run.exitCode, run.stderr).toBe(130);
    // Interrupted while unpacking: its tools were running.
    expect(tools.length).toBeGreaterThan(0);
    expect(run.stderr.trim()).toBe(`restore-pitr canceled; nothing was kept in ${dataDir}.`);
    expect(run.stdout).toBe('');
    // Both directories were made by it (`made` too): both gone.
    expect(await readdir(dir)).not.toContain('made');
    expect(await holds()).toEqual([]);
    expect(left).toEqual([]);
  }, 120_000);

  it('SIGTERM during the unpack empties the empty directory it was given, and keeps it and what is beside it', async () => {
    const given = join(dir, 'given');
    await mkdir(given);
    await writeFile(join(dir, 'beside.txt'), 'not ours');
    const { run, left } = await interrupted(given, 'SIGTERM');
    expect(run.exitCode, run.stderr).toBe(143);
    expect(run.stderr.trim()).toBe(`restore-pitr canceled; nothing was kept in ${given}.`);
    expect(await readdir(given)).toEqual([]);
    expect(await readdir(dir)).toContain('beside.txt');
    expect(await holds()).toEqual([]);
    expect(left).toEqual([]);
  }, 120_000);

  it('what a killed run left (a base backup never started) is named as such when the directory is refused as not empty', async () => {
    const leftover = join(dir, 'leftover');
    await mkdir(leftover);
    await writeFile(join(leftover, 'backup_label'), 'START WAL LOCATION: 0/2000028\n');
    const run = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${leftover}`], env);
    expect(run.exitCode).toBe(1);
    expect(run.stderr).toContain(
      `${leftover} is not empty: restore-pitr lays a cluster out only in an empty directory. It holds a base backup laid out and never started`,
    );
    // Never removed by restore-pitr: it was there before.
    expect(await readdir(leftover)).toEqual(['backup_label']);
    expect(await holds()).toEqual([]);
  }, 60_000);
});
