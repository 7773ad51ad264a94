import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServerUser, type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import type { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import { archiveEnds, RECOVERY_ONLY } from '../../../src/cli/pitr-next-steps.ts';
import { cli } from '../../support/app-backups.ts';
import { startTestArchive } from '../../support/pitr-archive.ts';
import { withClient } from '../../support/postgres-helpers.ts';
import { readableByServer, startRecovered } from '../../support/recovered-server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pids of `pid`'s children and theirs, each with its command name (read from /proc: a ps per level was too slow). */
function descendants(pid: number): { pid: number; comm: string }[] {
  const kids: number[] = [];
  // A process that ended while it was read has no children left to list.
  const tasks = (() => {
    try {
      return readdirSync(`/proc/${pid}/task`, { withFileTypes: true });
    } catch {
      return [];
    }
  })();
  for (const task of tasks) {
    const text = (() => {
      try {
        return readFileSync(`/proc/${pid}/task/${task.name}/children`, 'utf8');
      } catch {
        return '';
      }
    })();
    kids.push(...text.split(' ').map(Number).filter(Boolean));
  }
  const named = kids.map((p) => {
    try {
      return { pid: p, comm: readFileSync(`/proc/${p}/comm`, 'utf8').trim() };
    } catch {
      return { pid: p, comm: '' };
    }
  });
  return [...named, ...kids.flatMap((p) => descendants(p))];
}

const alive = (pid: number) => execa('kill', ['-0', String(pid)], { reject: false }).then((r) => r.exitCode === 0);

/**
 * restore-pitr canceled (Ctrl-C, SIGTERM) while it unpacks: its tools stop, what it laid out goes (the directory it
 * made, or what it wrote into the empty one it was given), its hold on the base backup is released, one sentence.
 * Before, it died at once, leaving the half-unpacked cluster, the hold and zstd/tar running.
 */
describe('restore-pitr: canceled, and what it refuses up front', () => {
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
    // Once tar runs and has written into it: the unpack is under way.
    const end = Date.now() + 60_000;
    let tools: { pid: number; comm: string }[] = [];
    const unpacking = () => {
      tools = child.exitCode === null ? descendants(child.pid as number) : [];
      return tools.some((t) => t.comm === 'tar');
    };
    while (!(unpacking() && (await readdir(dataDir).catch(() => [])).length > 0) && child.exitCode === null && Date.now() < end) await sleep(2);
    child.kill(signal);
    const run = await child;
    const left = (await Promise.all(tools.map(async (t) => ((await alive(t.pid)) ? t : null)))).filter((t) => t !== null);
    return { run, tools, left };
  }

  const holds = async () => (await readdir(join(env.BACKUP_DIR as string, 'app', '_pitr-readers')).catch(() => [])).filter((f) => f.endsWith('.json'));

  it('Ctrl-C during the unpack removes the directory it made, releases its hold, stops its tools, says so, exits 130', async () => {
    const dataDir = join(dir, 'made', 'cluster');
    const { run, tools, left } = await interrupted(dataDir, 'SIGINT');
    expect(run.exitCode, run.stderr).toBe(130);
    // Interrupted while unpacking: its tools were running.
    expect(tools.map((t) => t.comm)).toContain('tar');
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
    // Laid out to the end (recovery.signal, the bot's restore_command) and never started: a finished run's cluster,
    // waiting to be started, said so with its target (QA: it was told to remove it as a killed run's leftover).
    await writeFile(join(leftover, 'recovery.signal'), '');
    await writeFile(
      join(leftover, 'postgresql.auto.conf'),
      "restore_command = 'pg-backup-bot wal-fetch app %f %p'\nrecovery_target_time = '2026-12-07 07:30:00.000+00'\n",
    );
    const finished = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${leftover}`], env);
    expect(finished.exitCode).toBe(1);
    expect(finished.stderr).toContain(
      `It holds a cluster an earlier restore-pitr laid out (recovery.signal, the bot's restore_command) and that was never started (recovery_target_time = '2026-12-07 07:30:00.000+00'): if that run finished, start it as it said`,
    );
    expect(await holds()).toEqual([]);
  }, 60_000);

  it('refuses, before unpacking anything, a data directory the server user cannot reach (QA)', async () => {
    if ((await asServerUser()).uid === undefined) return;
    // As /root is: the server's user (postgres) may not pass through it. Before, the whole cluster was unpacked and
    // the printed pg_ctl failed "Permission denied".
    const locked = join(dir, 'locked');
    await mkdir(locked, { mode: 0o700 });
    const inside = join(locked, 'x');
    const refused = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${inside}`], env);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr.trim()).toBe(
      `Point-in-time restore FAILED: The recovered server will run as postgres (--run-as), who may not reach --data-dir=${inside}: ${locked} (to enter; mode 0700, owner 0:0); PostgreSQL would not start there. Choose a --data-dir postgres can reach (under its home, e.g. /var/lib/postgresql), or let it through (\`setfacl -m u:postgres:x DIR\`). Nothing was laid out.`,
    );
    expect(await readdir(locked)).toEqual([]);
    expect(await holds()).toEqual([]);
  }, 60_000);

  it('refuses root as the server user before unpacking anything (QA)', async () => {
    // Before: laid out, then `runuser -u root -- pg_ctl …` failed "pg_ctl: cannot be run as root".
    const asRoot = join(dir, 'as-root');
    const root = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${asRoot}`, '--run-as=root'], env);
    expect(root.exitCode).toBe(1);
    expect(root.stderr).toContain('The recovered server cannot run as root: PostgreSQL refuses to run as root');
    expect(await readdir(dir)).not.toContain('as-root');
    expect(await holds()).toEqual([]);
  }, 60_000);

  it('--from=s3 without a bucket configured says so, not "something unexpected" (QA)', async () => {
    const noBucket = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${join(dir, 'from-s3')}`, '--from=s3'], env);
    expect(noBucket.exitCode).toBe(1);
    expect(noBucket.stderr).toContain(
      'Point-in-time restore FAILED: --from=s3 reads the WAL archive in S3: set S3_BUCKET (and S3_MODE) as the workers have it.',
    );
    expect(await holds()).toEqual([]);
  }, 60_000);

  it('makes the parents of a new data directory passable to the server user, whatever the umask (mkdir -p gave them 0700)', async () => {
    if ((await asServerUser()).uid === undefined) return;
    const dataDir = join(dir, 'new-parent', 'deeper', 'cluster');
    const run = await execa('sh', ['-c', `umask 077 && exec node bin/pg-backup-bot.js restore-pitr app --time=latest --data-dir=${dataDir}`], {
      env: { PATH: process.env.PATH ?? '', ...env },
      extendEnv: false,
      reject: false,
    });
    expect(run.exitCode, run.stderr).toBe(0);
    for (const d of [join(dir, 'new-parent'), join(dir, 'new-parent', 'deeper')]) expect((await stat(d)).mode & 0o777).toBe(0o755);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    const passes = await execa('runuser', ['-u', 'postgres', '--', 'test', '-x', join(dir, 'new-parent', 'deeper')], { reject: false });
    expect(passes.exitCode).toBe(0);
    await rm(join(dir, 'new-parent'), { recursive: true, force: true });
    // Its hold stays for the recovery never started here; released for the next tests.
    for (const f of await holds()) await rm(join(env.BACKUP_DIR as string, 'app', '_pitr-readers', f));
  }, 120_000);

  it('promoting, the recovered server answers no query before recovery has ended, and says so (QA: 0 rows read halfway)', async () => {
    const dataDir = join(dir, 'promoted');
    const run = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('"archive recovery complete": until then the server refuses connections');
    expect(await readFile(join(dataDir, 'postgresql.auto.conf'), 'utf8')).toContain("hot_standby = 'off'");
    const server = await startRecovered(dataDir, [dir]);
    try {
      expect(server.started.exitCode, await server.log()).toBe(0);
      // The first query that gets through sees the whole database, out of recovery.
      for (let i = 0; ; i++) {
        const seen = await withClient(server.url, async (c) => ({
          inRecovery: (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r as boolean,
          rows: Number((await c.query('SELECT count(*) AS n FROM filler')).rows[0].n),
        })).catch((err: Error) => err);
        if (!(seen instanceof Error)) {
          expect(seen).toEqual({ inRecovery: false, rows: 1_500_000 });
          break;
        }
        expect(seen.message).toMatch(/not accepting connections|starting up|not yet accepting connections|connect/);
        if (i > 600) throw new Error(`never answered:\n${await server.log()}`);
        await sleep(100);
      }
      expect(await server.log()).toContain('archive recovery complete');
      // Then the recovery's settings out, as the output says, so a standby cloned from it later does not inherit them
      // (it would stop at the old target and promote itself): the statements printed, run as printed.
      const resets = [...run.stdout.matchAll(/-c "(ALTER SYSTEM RESET \w+)"/g)].map((m) => m[1] as string);
      expect(resets).toEqual(RECOVERY_ONLY.map((k) => `ALTER SYSTEM RESET ${k}`));
      expect(run.stdout).toContain('archive_mode stays off until this server has an archive of its own');
      // `latest` set a target of its own kind (an LSN, or `immediate`), not recovery_target_time: it goes too.
      expect(await readFile(join(dataDir, 'postgresql.auto.conf'), 'utf8')).toMatch(/^recovery_target(_lsn)? = /m);
      await withClient(server.url, async (c) => {
        for (const sql of resets) await c.query(sql);
      });
      const conf = await readFile(join(dataDir, 'postgresql.auto.conf'), 'utf8');
      expect(conf).not.toMatch(/^(restore_command|recovery_target(_\w+)?|hot_standby)\s*=/m);
      expect(conf).toMatch(/^archive_mode = 'off'$/m);
    } finally {
      await server.stop();
      for (const f of await holds()) await rm(join(env.BACKUP_DIR as string, 'app', '_pitr-readers', f));
    }
  }, 180_000);

  it('--action=pause says what a paused recovery logs, how to check it read-only and how to promote it, and that is so (QA)', async () => {
    const dataDir = join(dir, 'paused');
    const run = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${dataDir}`, '--action=pause'], env);
    expect(run.exitCode, run.stderr).toBe(0);
    // Before: "Then check the log for … and "archive recovery complete"", which never comes while paused.
    expect(run.stdout).toContain(
      'and "pausing at the end of recovery" ("recovery has paused" before PostgreSQL 14): the server holds there, still in recovery, and answers read-only queries',
    );
    expect(run.stdout).toContain('Check the data: `runuser -u postgres -- psql -p ');
    // `latest` is the archive's newest: how far it reaches, and how long ago, said (QA).
    expect(run.stdout).toMatch(/\nThe archive holds WAL up to \S+Z \(.+ ago\): anything committed after that never reached it and is not in this copy/);
    expect(run.stdout).toContain(
      'promote it with `SELECT pg_wal_replay_resume();` (as a superuser): recovery ends there and the log says "archive recovery complete"',
    );
    const server = await startRecovered(dataDir, [dir]);
    try {
      expect(server.started.exitCode, await server.log()).toBe(0);
      // What PostgreSQL 15 logs when it pauses at the target (checked here: "recovery has paused" it no longer logs there).
      for (let i = 0; !(await server.log()).includes('pausing at the end of recovery'); i++) {
        if (i > 300) throw new Error(`never paused:\n${await server.log()}`);
        await sleep(100);
      }
      // Read-only, as said: the data is there, nothing can be written.
      await withClient(server.url, async (c) => {
        expect((await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r).toBe(true);
        expect(Number((await c.query('SELECT count(*) AS n FROM filler')).rows[0].n)).toBe(1_500_000);
        await expect(c.query('CREATE TABLE w (n int)')).rejects.toThrow(/read-only transaction/);
        await c.query('SELECT pg_wal_replay_resume()');
      });
      await server.outOfRecovery();
      expect(await server.log()).toContain('archive recovery complete');
    } finally {
      await server.stop();
      for (const f of await holds()) await rm(join(env.BACKUP_DIR as string, 'app', '_pitr-readers', f));
    }
  }, 180_000);
});

describe('archiveEnds', () => {
  const to = new Date('2026-12-07T03:00:00Z');
  it('says how far the archive reaches, and past the usual lag, that the source is quiet or the stream down', () => {
    expect(archiveEnds('app', { to, reachesNewest: true }, new Date('2026-12-07T03:00:20Z'))).toBe(
      'The archive holds WAL up to 2026-12-07T03:00:00.000Z (20.0 s ago): anything committed after that never reached it and is not in this copy.',
    );
    expect(archiveEnds('app', { to, reachesNewest: true }, new Date('2026-12-07T03:45:00Z'))).toMatch(
      /^The archive holds WAL up to 2026-12-07T03:00:00\.000Z \(45 min 0 s ago\): .+ That is older than the stream's usual lag .+: either the source has written nothing since, or the WAL stream is down \(`pg-backup-bot check` says which\)\.$/,
    );
  });

  it('blames a gap or a switch it cannot cross, not the stream (second reader), and says a timeline asked for as such', () => {
    const late = new Date('2026-12-07T09:00:00Z');
    expect(archiveEnds('app', { to, reachesNewest: false, gap: '000000010000000000000009' }, late)).toBe(
      'Recovery reaches only 2026-12-07T03:00:00.000Z (6 h 0 min ago): segment 000000010000000000000009 is missing after it. WAL archived after that cannot be replayed from this base backup; a base backup taken now opens a window past it (`pg-backup-bot base-backup app`).',
    );
    expect(archiveEnds('app', { to, reachesNewest: false, switched: { timeline: 2 } }, late)).toMatch(
      /^Recovery reaches only .+: the server moved to timeline 2, which no base backup this recovery can start from reaches\./,
    );
    expect(archiveEnds('app', { to, reachesNewest: true }, late, 1)).toBe('Along timeline 1, the archive reaches 2026-12-07T03:00:00.000Z (6 h 0 min ago).');
  });
});
