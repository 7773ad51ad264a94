import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { makeRestoreTemp, sweepOrphanedTemps } from '../../../src/postgres/owned-temps.ts';
import { appBackedUpByCli, cli } from '../../support/app-backups.ts';

/**
 * The temp directories that hold a decrypted backup while a restore reads it: one whose process was killed outright
 * (no chance to remove it) is removed by the next restore on the host; one whose process lives, or of another host,
 * or too young to tell, is left alone.
 */
describe('orphaned restore temp directories', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgbb-orphans-'));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  const temp = async (name: string, owner: string | null, ageMs = 0) => {
    const dir = join(root, `pgbb-restore-${name}`);
    await mkdir(dir);
    await writeFile(join(dir, 'database.pgdump'), 'PGDMP decrypted rows');
    if (owner !== null) await writeFile(join(dir, 'owner'), owner);
    const at = new Date(Date.now() - ageMs);
    await utimes(dir, at, at);
    return dir;
  };

  it('a passfile left by a killed process goes with the next process’s first passfile; its own names it and goes after (QA)', async () => {
    const gone = (await execa('sh', ['-c', 'echo $$'])).stdout.trim();
    const passRoot = await mkdtemp(join(root, 'tmp-'));
    const killed = join(passRoot, 'pgbb-pass-killed');
    await mkdir(killed);
    await writeFile(join(killed, 'pgpass'), '*:*:*:*:S3cret\n', { mode: 0o600 });
    await writeFile(join(killed, 'owner'), `${gone}\n${hostname()}\n`);
    // A process of its own: the sweep runs once per process, at its first passfile, and this one's test runner
    // (vitest without isolation) may have made one already.
    const script = [
      `import { readFile, readdir } from 'node:fs/promises';`,
      `import { join } from 'node:path';`,
      `import { withPgEnv } from ${JSON.stringify(join(process.cwd(), 'src/postgres/connection.ts'))};`,
      `const seen = await withPgEnv('postgres://app:S3cret2@127.0.0.1:5432/db', async (env) => ({`,
      `  file: await readFile(env.PGPASSFILE ?? '', 'utf8'),`,
      `  owner: await readFile(join(env.PGPASSFILE ?? '', '..', 'owner'), 'utf8'),`,
      `  dirs: await readdir(${JSON.stringify(passRoot)}),`,
      `}));`,
      `console.log(JSON.stringify({ ...seen, pid: process.pid }));`,
    ].join('\n');
    const run = await execa('node', ['--import', 'tsx', '--input-type=module', '-e', script], { env: { TMPDIR: passRoot } });
    const seen = JSON.parse(run.stdout) as { file: string; owner: string; dirs: string[]; pid: number };
    expect(seen.file).toBe('*:*:*:*:S3cret2\n');
    expect(seen.owner).toBe(`${seen.pid}\n${hostname()}\n`);
    // Beside tsx's own cache there (tsx-<uid>), only the living process's passfile directory.
    const passDirs = (dirs: string[]) => dirs.filter((d) => d.startsWith('pgbb-'));
    expect(passDirs(seen.dirs)).toHaveLength(1);
    expect(existsSync(killed)).toBe(false);
    expect(passDirs(await readdir(passRoot))).toEqual([]);
  });

  it('removes the directory of a process that is gone, keeps the others, and names itself for the next', async () => {
    // A pid that was a process and is not any more (a `kill -9`ed restore's).
    const gone = (await execa('sh', ['-c', 'echo $$'])).stdout.trim();
    const killed = await temp('killed', `${gone}\n${hostname()}\n`);
    const living = await temp('living', `${process.pid}\n${hostname()}\n`);
    const elsewhere = await temp('elsewhere', `${gone}\nanother-host\n`);
    const unownedOld = await temp('unowned-old', null, 2 * 24 * 3600_000);
    const unownedNew = await temp('unowned-new', null);
    // An owner file cut short (killed while writing it) counts as none.
    const cutShortOld = await temp('cut-short-old', '', 2 * 24 * 3600_000);
    const cutShortNew = await temp('cut-short-new', '12');
    const other = join(root, 'pgbb-other-thing');
    await mkdir(other);
    const made = await makeRestoreTemp(root);
    expect(existsSync(killed)).toBe(false);
    expect(existsSync(unownedOld)).toBe(false);
    expect(existsSync(cutShortOld)).toBe(false);
    for (const kept of [living, elsewhere, unownedNew, cutShortNew, other, made]) expect(existsSync(kept)).toBe(true);
    expect(await readFile(join(made, 'owner'), 'utf8')).toBe(`${process.pid}\n${hostname()}\n`);
    // The next sweep finds nothing more to remove: its own directory's process is alive.
    expect(await sweepOrphanedTemps(root)).toEqual([]);
  });

  it('a restore test killed outright (kill -9) leaves its decrypted copy only until the next restore test', async () => {
    const server = await startEphemeralPostgres();
    const fixture = await appBackedUpByCli(server.url, 'orphan');
    const tmp = join(root, 'tmp');
    await mkdir(tmp);
    const env = { ...fixture.env, TMPDIR: tmp };
    const temps = async () => (await readdir(tmp)).filter((n) => n.startsWith('pgbb-restore-'));
    // Killed once its directory names its process (the moment between mkdtemp and that file holds nothing decrypted;
    // killed inside it on a loaded machine, the directory is unowned and kept a day: CI). Named means the whole file:
    // it exists, empty, a moment before its pid and host are in it (CI again: killed then, it was kept).
    const whole = (n: string) =>
      readFile(join(tmp, n, 'owner'), 'utf8').then(
        (t) => /^\d+\n.+\n$/.test(t),
        () => false,
      );
    const owned = async () => {
      const named: string[] = [];
      for (const n of await temps()) if (await whole(n)) named.push(n);
      return named;
    };
    try {
      const first = execa('node', ['bin/pg-backup-bot.js', 'restore-test', fixture.backupId], {
        env: { PATH: process.env.PATH ?? '', ...env },
        extendEnv: false,
        reject: false,
      });
      for (let i = 0; i < 1500 && (await owned()).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      const [left] = await owned();
      expect(left).toBeDefined();
      first.kill('SIGKILL');
      await first;
      expect(await temps()).toEqual([left]);
      const second = await cli(['restore-test', fixture.backupId], env);
      expect(second.exitCode, second.stderr).toBe(0);
      expect(await temps()).toEqual([]);
    } finally {
      await fixture.cleanup();
      await server.stop();
    }
  }, 120_000);
});
