/**
 * The legs of bench/pitr.ts: a base backup three ways (the bot's CLI, the bare pg_basebackup pipe, pgBackRest) and
 * a point-in-time restore two ways (the bot's restore-pitr, pgBackRest's restore --type=time), each timed until
 * its output is on disk (backups) or the recovered server has left recovery (restores).
 */
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { freePort } from '../src/dev/ephemeral.ts';
import { client } from './dataset.ts';
import { dropCaches, filesUnder, fsyncAll, totalBytes } from './measure.ts';
import { type RecoveryTrace, recoveryTrace } from './recovery-trace.ts';

export interface PitrBench {
  dir: string;
  repoRoot: string;
  binDir: string;
  /** The source: its socket directory and port, its data directory. */
  socketDir: string;
  port: number;
  dataDir: string;
  pgbrConfig: string;
  /** Environment for the bot's CLI: BOT_CONFIG, BACKUP_DIR, keys, the target's URLs. */
  botEnv: Record<string, string>;
  uid: number;
  gid: number;
}

export interface Timed {
  seconds: number;
  bytes: number;
}

const asPostgres = (cmd: string, args: string[]) => execa('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdin: 'ignore' });

export const pgbackrest = (b: PitrBench, args: string[]) => asPostgres('pgbackrest', [`--config=${b.pgbrConfig}`, '--stanza=bench', ...args]);

async function timed(prepare: () => Promise<void>, run: () => Promise<unknown>): Promise<number> {
  await prepare();
  const t0 = performance.now();
  await run();
  return (performance.now() - t0) / 1000;
}

async function checkpointAndDrop(b: PitrBench): Promise<void> {
  const c = client(`postgres://postgres@127.0.0.1:${b.port}/postgres`);
  await c.connect();
  await c.query('checkpoint').finally(() => c.end());
  await dropCaches();
}

/** The bot's base backup, as `pg-backup-bot base-backup` runs it: zstd, age, hashed, its record written. */
export async function botBase(b: PitrBench): Promise<Timed> {
  const out = join(b.botEnv.BACKUP_DIR as string, 'bench', '_base');
  const before = new Set(await filesUnder(out).catch(() => [] as string[]));
  const seconds = await timed(
    () => checkpointAndDrop(b),
    () => execa(process.execPath, [join(b.repoRoot, 'bin/pg-backup-bot.js'), 'base-backup', 'bench'], { env: b.botEnv, stdin: 'ignore' }),
  );
  const made = (await filesUnder(out)).filter((f) => !before.has(f));
  return { seconds, bytes: await totalBytes(made) };
}

/** The floor: `pg_basebackup -Ft -X none -D - | zstd -T0 -2 > file`, synced. */
export async function bareBase(b: PitrBench, round: number): Promise<Timed> {
  const file = join(b.dir, `bare-${round}.tar.zst`);
  const seconds = await timed(
    () => checkpointAndDrop(b),
    async () => {
      await execa('bash', ['-c', `"$PGBIN/pg_basebackup" -Ft -X none -D - --checkpoint=fast | zstd -T0 -2 -q > "$OUT"`], {
        env: { PGBIN: b.binDir, OUT: file, PGHOST: b.socketDir, PGPORT: String(b.port), PGUSER: 'postgres' },
        stdin: 'ignore',
      });
      await fsyncAll([file]);
    },
  );
  const bytes = await totalBytes([file]);
  await rm(file, { force: true });
  return { seconds, bytes };
}

/** pgBackRest's full backup: zstd, process-max 2, a local repository (its WAL archived by archive_command). */
export async function pgbrBase(b: PitrBench): Promise<Timed> {
  const repo = join(b.dir, 'pgbr-repo', 'backup');
  const before = await totalBytes(await filesUnder(repo).catch(() => [] as string[]));
  const seconds = await timed(
    () => checkpointAndDrop(b),
    () => pgbackrest(b, ['--type=full', 'backup']),
  );
  return { seconds, bytes: (await totalBytes(await filesUnder(repo))) - before };
}

/** Starts a recovered data directory on a free port and waits until recovery has ended (promoted). */
async function recover(b: PitrBench, dataDir: string): Promise<{ port: number; log: string; stop(): Promise<void> }> {
  const port = await freePort();
  const sock = join(dataDir, '..');
  await writeFile(
    join(dataDir, 'postgresql.auto.conf'),
    `\nport = '${port}'\nunix_socket_directories = '${sock}'\narchive_mode = 'off'\nlog_line_prefix = '%m '\nlog_timezone = 'UTC'\n`,
    { flag: 'a' },
  );
  await execa('chown', ['-R', 'postgres:postgres', dataDir]);
  await execa('chmod', ['0700', dataDir]);
  const log = join(sock, `recovery-${port}.log`);
  await asPostgres(join(b.binDir, 'pg_ctl'), ['-D', dataDir, '-l', log, '-w', '-t', '3600', 'start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  for (;;) {
    const c = client(url);
    const inRecovery = await c
      .connect()
      .then(() => c.query('select pg_is_in_recovery() as r'))
      .then((r) => r.rows[0].r as boolean)
      .catch(() => true)
      .finally(() => c.end().catch(() => undefined));
    if (!inRecovery) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    log,
    stop: () => asPostgres(join(b.binDir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).then(() => undefined),
  };
}

async function emptyDir(b: PitrBench, name: string): Promise<string> {
  const parent = join(b.dir, `${name}-${Date.now()}`);
  const data = join(parent, 'data');
  await mkdir(data, { recursive: true, mode: 0o700 });
  await chown(parent, b.uid, b.gid);
  await chown(data, b.uid, b.gid);
  return data;
}

export interface Restored extends Timed {
  rows: number;
  stoppedBefore: boolean;
  /** Of `seconds`: laying the base backup out (restore-pitr, pgBackRest restore), then recovery to a promoted server. */
  laySeconds: number;
  recoverySeconds: number;
  /** The recovered server's log, step by step (bench/recovery-trace.ts). */
  trace: RecoveryTrace | null;
}

async function finish(dataDir: string, laySeconds: number, seconds: number, check: string, log: string): Promise<Restored> {
  const bytes = await totalBytes(await filesUnder(dataDir));
  const trace = recoveryTrace(await readFile(log, 'utf8'));
  return { seconds, laySeconds, recoverySeconds: seconds - laySeconds, bytes, rows: Number(check.split(' ')[0]), stoppedBefore: check.endsWith('true'), trace };
}

/** What the recovered server holds: rows of pgbench_history, and whether its log says recovery stopped at the target. */
async function inspect(port: number, log: string): Promise<string> {
  const c = client(`postgres://postgres@127.0.0.1:${port}/bench`);
  await c.connect();
  const rows = await c.query('select count(*)::int as n from pgbench_history').finally(() => c.end());
  const text = await readFile(log, 'utf8');
  return `${rows.rows[0].n} ${/recovery stopping before/.test(text) && !/recovery ended before configured recovery target/.test(text)}`;
}

/** A restore leg: `lay` fills an empty data directory, then recovery runs; timed from `lay` to a promoted server. */
async function restoreLeg(b: PitrBench, name: string, lay: (data: string) => Promise<unknown>): Promise<Restored> {
  const data = await emptyDir(b, name);
  await dropCaches();
  const t0 = performance.now();
  await lay(data);
  const laySeconds = (performance.now() - t0) / 1000;
  const server = await recover(b, data);
  const seconds = (performance.now() - t0) / 1000;
  const check = await inspect(server.port, server.log);
  await server.stop();
  const out = await finish(data, laySeconds, seconds, check, server.log);
  await rm(join(data, '..'), { recursive: true, force: true });
  return out;
}

/** The bot's restore-pitr and recovery to `at`. */
export function botRestore(b: PitrBench, at: string): Promise<Restored> {
  return restoreLeg(b, 'bot-restore', (data) =>
    execa(process.execPath, [join(b.repoRoot, 'bin/pg-backup-bot.js'), 'restore-pitr', 'bench', `--time=${at}`, `--data-dir=${data}`], {
      env: b.botEnv,
      stdin: 'ignore',
    }),
  );
}

/** pgBackRest's restore --type=time and recovery to `at`, timed the same way. */
export function pgbrRestore(b: PitrBench, at: string): Promise<Restored> {
  return restoreLeg(b, 'pgbr-restore', (data) => pgbackrest(b, ['--type=time', `--target=${at}`, '--target-action=promote', `--pg1-path=${data}`, 'restore']));
}
