import { mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, loadIdentity } from '../../../src/crypto/age.ts';
import { asServerUser, type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import type { startWalArchive } from '../../../src/postgres/pitr/wal-archive.ts';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { layOutRecovery, listBaseBackups } from '../../../src/postgres/pitr/pitr-restore.ts';
import { LocalWalStore } from '../../../src/postgres/pitr/wal-store.ts';
import { cli } from '../../support/app-backups.ts';
import { startTestArchive } from '../../support/pitr-archive.ts';
import { withClient } from '../../support/postgres-helpers.ts';
import { readableByServer, recoveredMarkers } from '../../support/recovered-server.ts';

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
  let baseBackup: () => Promise<unknown>;
  let env: Record<string, string>;
  const slot = 'pgbb_pitr_test';

  beforeAll(async () => {
    source = await startEphemeralPostgres({ settings: { full_page_writes: 'on' } });
    dir = await mkdtemp(join(tmpdir(), 'pgbb-pitr-'));
    const root = join(dir, 'backups');
    const test = await startTestArchive({ url: source.url, root, spool: join(dir, 'spool'), target: 'app', slot });
    archive = test.archive;
    baseBackup = test.baseBackup;
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
    // Where else to look: the logical backups reach further back than the WAL archive.
    expect(outside.stderr).toContain('For a moment outside it, a logical backup may serve: `/backup list app` or `pg-backup-bot list app`.');

    // The server will run as postgres (these tests run as root): WAL archived since the setup is root's, 0640. Laid
    // out anyway, PostgreSQL said only "invalid checkpoint record" and hinted to remove backup_label (QA).
    if ((await asServerUser()).uid !== undefined) {
      // As the worker (root) makes it: 0750.
      const walDir = join(env.BACKUP_DIR as string, 'app', '_wal');
      await execa('chmod', ['0750', walDir]);
      const refused = await cli(['restore-pitr', 'app', `--time=${target.toISOString()}`, `--data-dir=${join(dir, 'refused')}`], env);
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain(
        `Point-in-time restore FAILED: The recovered server will run as postgres (--run-as), who may not read what its restore_command needs: ${walDir} (to enter; mode 0750, owner 0:0). Give postgres access`,
      );
      expect(refused.stderr).toMatch(/ Nothing was laid out\.$/m);
      expect(await readdir(join(dir, 'refused')).catch(() => [])).toEqual([]);
      // A user that is not there is named as such.
      const nobody = await cli(['restore-pitr', 'app', `--time=${target.toISOString()}`, `--data-dir=${join(dir, 'refused')}`, '--run-as=pgbb_nobody'], env);
      expect(nobody.stderr).toContain('There is no user pgbb_nobody on this host to run the recovered server: name the one who will with --run-as=USER.');
    }
    const dataDir = join(dir, 'restored');
    await readableByServer([dir]);
    const run = await cli(['restore-pitr', 'app', `--time=${target.toISOString()}`, `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Laid out base backup app-base-/);
    // The source's port comes with its configuration: said, with how to pick another on the source's own host.
    expect(run.stdout).toContain(
      `It will listen on port ${new URL(env.APP_URL as string).port}, as the base backup's configuration files set it: on a host where that port is taken`,
    );

    // The WAL archived since the setup, readable by the server's user too.
    const { labels, log } = await recoveredMarkers(dataDir, [join(dir, 'backups')]);
    expect(labels).toEqual(['before-1', 'before-2']);
    expect(log).toMatch(/recovery stopping before commit of transaction \d+, time /);
    expect(log).not.toMatch(/recovery ended before configured recovery target was reached/);
  }, 180_000);

  it('a time no commit follows, and `latest`, recover to the newest commit instead of failing "before the target" (QA)', async () => {
    await withClient(source.url, (c) => c.query("INSERT INTO markers VALUES ('late')"));
    await sleep(1100);
    // After the newest commit, inside the window (the segment switched below is archived after it).
    const quiet = new Date();
    await sleep(300);
    const last = await withClient(
      source.url,
      async (c) => (await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0]?.name as string,
    );
    const store = new LocalWalStore(env.BACKUP_DIR as string, 'app');
    for (let i = 0; !(await store.entry(last)); i++) {
      if (i > 600) throw new Error(`WAL ${last} never archived: ${JSON.stringify(archive.state())}`);
      await sleep(100);
    }
    // Before: laid out with recovery_target_time, PostgreSQL replayed everything and then stopped with "FATAL: recovery
    // ended before configured recovery target was reached", and the output blamed an incomplete archive.
    const dataDir = join(dir, 'quiet');
    await readableByServer([dir]);
    const run = await cli(['restore-pitr', 'app', `--time=${quiet.toISOString()}`, `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(
        `No commit in the archive follows ${quiet.toISOString()}, so PostgreSQL could never stop "at" it: it recovers to the archive's newest commit, at \\S+ \\(LSN [0-9A-F]+/[0-9A-F]+\\), which holds exactly what the database held at ${quiet.toISOString()}\\.`,
      ),
    );
    const lsn = /\(LSN ([0-9A-F]+\/[0-9A-F]+)\)/.exec(run.stdout)?.[1] ?? '';
    expect(run.stdout).toContain(`Then check the log for "recovery stopping after WAL location (LSN) \\"${lsn}\\""`);
    const quietRecovered = await recoveredMarkers(dataDir, [join(dir, 'backups')]);
    expect(quietRecovered.labels).toEqual(['before-1', 'before-2', 'after', 'late']);
    expect(quietRecovered.log).toContain(`recovery stopping after WAL location (LSN) "${lsn}"`);
    expect(quietRecovered.log).not.toMatch(/recovery ended before configured recovery target was reached/);

    // `latest`: as late as the archive reaches, the same way.
    const latestDir = join(dir, 'latest');
    const latest = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${latestDir}`], env);
    expect(latest.exitCode, latest.stderr).toBe(0);
    expect(latest.stdout).toMatch(
      /at the target\. It recovers to the archive's newest commit, at \S+ \(LSN [0-9A-F]+\/[0-9A-F]+\), which holds exactly what the database held\./,
    );
    expect((await recoveredMarkers(latestDir, [join(dir, 'backups')])).labels).toEqual(['before-1', 'before-2', 'after', 'late']);
  }, 180_000);

  it("`latest` with nothing committed after the newest base backup recovers to that backup's end, not to an earlier commit (review)", async () => {
    await baseBackup();
    // Its WAL archived (the segment switched to after it too), then readable by the server's user.
    const last = await withClient(
      source.url,
      async (c) => (await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0]?.name as string,
    );
    const store = new LocalWalStore(env.BACKUP_DIR as string, 'app');
    for (let i = 0; !(await store.entry(last)); i++) {
      if (i > 600) throw new Error(`WAL ${last} never archived`);
      await sleep(100);
    }
    // Before: the newest commit, found back in the base backup's first segment, became a target before its consistent
    // point, and PostgreSQL refused to start ("requested recovery stop point is before consistent recovery point").
    const dataDir = join(dir, 'after-base');
    await readableByServer([dir]);
    const run = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/Nothing was committed after base backup app-base-\S+: it recovers to the end of that base backup, which holds the same data\./);
    const recovered = await recoveredMarkers(dataDir, [join(dir, 'backups')]);
    expect(recovered.labels).toEqual(['before-1', 'before-2', 'after', 'late']);
    expect(recovered.log).toContain('recovery stopping after reaching consistency');
  }, 180_000);

  it('`latest` with a segment set aside as damaged recovers to the last commit before that gap, not to one after it (QA)', async () => {
    const store = new LocalWalStore(env.BACKUP_DIR as string, 'app');
    const commitAndSwitch = (label: string) =>
      withClient(source.url, async (c) => {
        await c.query('INSERT INTO markers (label) VALUES ($1)', [label]);
        return (await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name')).rows[0]?.name as string;
      });
    const segments = [await commitAndSwitch('pre-gap'), await commitAndSwitch('beyond-gap'), await commitAndSwitch('newest')];
    for (const name of segments)
      for (let i = 0; !(await store.entry(name)); i++) {
        if (i > 600) throw new Error(`WAL ${name} never archived`);
        await sleep(100);
      }
    // The checksum scrub's way of taking a rotted segment out (pitr-scrub.ts): the file moved aside, its entry kept.
    const rotten = (await store.entry(segments[1] as string)) as NonNullable<Awaited<ReturnType<typeof store.entry>>>;
    await rename(join(store.dir, rotten.file), join(store.dir, `${rotten.file}.damaged`));
    const dataDir = join(dir, 'before-gap');
    await readableByServer([dir]);
    // A key that opens nothing fails the lay out, says which key, and leaves the directory empty for the next try.
    const otherKey = join(dir, 'other-key.txt');
    // Readable by the server's user, as the access check asks of the real one.
    await writeFile(otherKey, (await generateKeyPair()).identityFileText, { mode: 0o644 });
    const wrong = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${dataDir}`], { ...env, BACKUP_ENCRYPTION_IDENTITY_FILE: otherKey });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain(`is encrypted for another key: BACKUP_ENCRYPTION_IDENTITY_FILE (${otherKey}) does not match any of its recipients.`);
    // The directory it made goes with what was unpacked.
    expect(await readdir(dir)).not.toContain('before-gap');
    // A base backup that unpacks whole but does not match its record: what was unpacked goes too (it stayed, before).
    const newestBase = (await listBaseBackups(env.BACKUP_DIR as string, 'app')).at(-1) as BaseBackup;
    await expect(
      layOutRecovery({
        root: env.BACKUP_DIR as string,
        base: { ...newestBase, sha256: '0'.repeat(64) },
        dataDir,
        identity: await loadIdentity(env.BACKUP_ENCRYPTION_IDENTITY_FILE, 'test'),
        identityFile: env.BACKUP_ENCRYPTION_IDENTITY_FILE,
        at: new Date(),
        timeline: 1,
        action: 'promote',
        restoreCommand: 'false',
      }),
    ).rejects.toThrow(`does not match its sha256: the stored file is damaged; nothing of it is left in ${dataDir}.`);
    expect(await readdir(dir)).not.toContain('before-gap');
    const run = await cli(['restore-pitr', 'app', '--time=latest', `--data-dir=${dataDir}`], env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/It recovers to the archive's newest commit, at \S+ \(LSN [0-9A-F]+\/[0-9A-F]+\)/);
    // Before: the commit of 'newest', beyond the gap, was the target, and recovery ended before reaching it (FATAL).
    const recovered = await recoveredMarkers(dataDir, [join(dir, 'backups')]);
    expect(recovered.labels.slice(-2)).toEqual(['late', 'pre-gap']);
    expect(recovered.log).not.toMatch(/recovery ended before configured recovery target was reached/);
  }, 180_000);

  it('two lay outs into one directory at once: one lays it out, the other is refused and touches nothing (QA)', async () => {
    const dataDir = join(dir, 'twice');
    const base = (await listBaseBackups(env.BACKUP_DIR as string, 'app')).at(-1) as BaseBackup;
    const identity = await loadIdentity(env.BACKUP_ENCRYPTION_IDENTITY_FILE, 'test');
    const layOut = () =>
      layOutRecovery({
        root: env.BACKUP_DIR as string,
        base,
        dataDir,
        identity,
        identityFile: env.BACKUP_ENCRYPTION_IDENTITY_FILE,
        at: new Date(),
        timeline: 1,
        action: 'promote',
        restoreCommand: 'false',
      });
    const [a, b] = await Promise.allSettled([layOut(), layOut()]);
    const won = [a, b].filter((r) => r.status === 'fulfilled');
    const lost = [a, b].flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatch(new RegExp(`${dataDir} (is being laid out by another restore-pitr \\(pid \\d+|is not empty)`));
    // The winner's cluster is whole, and its claim gone.
    const files = await readdir(dataDir);
    expect(files).toEqual(expect.arrayContaining(['PG_VERSION', 'recovery.signal', 'postgresql.auto.conf']));
    expect(files).not.toContain('.pgbb-restore-pitr.claim');
    await rm(dataDir, { recursive: true, force: true });
  }, 60_000);
});
