import { access, appendFile, chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import pg from 'pg';
import { asServerUser } from '../../dev/ephemeral.ts';
import { BotError } from '../../errors.ts';
import { isExecutable } from '../tools.ts';

/**
 * A private PostgreSQL cluster for a point-in-time restore test: a directory of its own under the temp dir
 * (`pgbb-pitr-test-…`: data, the fetched WAL, the server's log and its socket), a server of the base backup's
 * major version that listens on that directory's Unix socket only (no TCP port, `trust` only there), run as the
 * worker's own user or, as root, as `postgres`. `remove()` stops it and deletes the directory, on every path.
 */
export interface ScratchDir {
  dir: string;
  dataDir: string;
  walDir: string;
  log: string;
  user: { prefix: string[]; uid?: number; gid?: number };
  remove(): Promise<void>;
}

export async function makeScratchDir(label: string): Promise<ScratchDir> {
  const dir = await mkdtemp(join(tmpdir(), `pgbb-pitr-test-${label.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)}-`));
  const user = await asServerUser();
  let removed = false;
  const s: ScratchDir = {
    dir,
    dataDir: join(dir, 'data'),
    walDir: join(dir, 'wal'),
    log: join(dir, 'server.log'),
    user,
    async remove() {
      if (removed) return;
      removed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
  return s;
}

/** The server binaries of one major version (Debian's /usr/lib/postgresql/<major>/bin), or a sentence saying what to install. */
export async function serverBinDir(major: number): Promise<string> {
  const dir = `/usr/lib/postgresql/${major}/bin`;
  if ((await isExecutable(join(dir, 'postgres'))) && (await isExecutable(join(dir, 'pg_ctl')))) return dir;
  throw new BotError(
    'pg_tool_missing',
    `The base backup is of PostgreSQL ${major}, whose server is not installed on this worker: \`apt-get install postgresql-${major}\` (the scratch cluster must be of the same major).`,
  );
}

/** A server tool (pg_ctl, pg_waldump) of a laid-out cluster's major, by its full path; null when not installed here. */
export const clusterTool = (dataDir: string, tool: string): Promise<string | null> =>
  clusterMajor(dataDir)
    .then(serverBinDir)
    .then((bin) => join(bin, tool))
    .catch(() => null);

/** PG_VERSION of a laid-out cluster: its major version. */
export async function clusterMajor(dataDir: string): Promise<number> {
  const major = Number.parseInt((await readFile(join(dataDir, 'PG_VERSION'), 'utf8')).trim(), 10);
  if (!Number.isInteger(major) || major < 10) throw new BotError('storage_failed', `The base backup's PG_VERSION is unreadable: ${dataDir} is not a cluster.`);
  return major;
}

/**
 * What the scratch server runs with, after the source's own settings (the last value wins in postgresql.auto.conf):
 * its own socket and no TCP, its own pg_hba (trust on that private socket), small memory, the log to stderr (our -l
 * file), no archiving, no preloaded libraries it may not have, and no hot standby, so nobody reads a half-replayed
 * copy. A base backup of a Debian cluster has no postgresql.conf in its data directory: an empty one is written.
 */
export async function configureScratch(s: ScratchDir, port: number): Promise<void> {
  const hba = join(s.dir, 'pg_hba.conf');
  const ident = join(s.dir, 'pg_ident.conf');
  await writeFile(hba, 'local all all trust\n');
  await writeFile(ident, '');
  const conf = join(s.dataDir, 'postgresql.conf');
  if (
    !(await access(conf).then(
      () => true,
      () => false,
    ))
  )
    await writeFile(conf, '');
  const q = (v: string) => `'${v.replace(/'/g, "''")}'`;
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: '',
    unix_socket_directories: s.dir,
    hba_file: hba,
    ident_file: ident,
    external_pid_file: '',
    ssl: 'off',
    shared_buffers: '128MB',
    huge_pages: 'off',
    shared_preload_libraries: '',
    session_preload_libraries: '',
    local_preload_libraries: '',
    // How recovery ended is read from the log in English: the source's own language and log level do not apply.
    lc_messages: 'C',
    log_min_messages: 'warning',
    logging_collector: 'off',
    log_destination: 'stderr',
    hot_standby: 'off',
    archive_mode: 'off',
    fsync: 'off',
  };
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${q(v)}`);
  await appendFile(join(s.dataDir, 'postgresql.auto.conf'), `\n# pg-backup-bot scratch cluster of a restore test\n${lines.join('\n')}\n`);
  if (s.user.uid !== undefined) await execa('chown', ['-R', `${s.user.uid}:${s.user.gid}`, s.dir]);
  await chmod(s.dataDir, 0o700);
  await chmod(s.dir, 0o700);
}

/** pg_ctl of that major, as the server's user. */
export function pgCtl(s: ScratchDir, binDir: string, args: string[], signal?: AbortSignal) {
  const [cmd, ...rest] = [...s.user.prefix, join(binDir, 'pg_ctl'), ...args];
  return execa(cmd as string, rest, {
    stdin: 'ignore',
    reject: false,
    env: { PATH: process.env.PATH ?? '', LANG: 'C' },
    extendEnv: false,
    ...(signal ? { cancelSignal: signal } : {}),
  });
}

/** A client of the scratch server, through its private socket. */
export async function withScratchClient<T>(s: ScratchDir, port: number, user: string, database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: s.dir, port, user, database, connectionTimeoutMillis: 5000, application_name: 'pg-backup-bot' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

export const serverLog = (s: ScratchDir) => readFile(s.log, 'utf8').catch(() => '');

/** How recovery ended, in the server's own words: the stop point, or why it did not reach the target. */
export function recoveryEnding(log: string): { reached: boolean; said: string } {
  const notReached = /FATAL:\s+(recovery ended before configured recovery target was reached)/.exec(log);
  if (notReached) return { reached: false, said: notReached[1] as string };
  const stop = /LOG:\s+(recovery stopping (?:before|after) [^\n]+)/.exec(log);
  if (stop) return { reached: true, said: stop[1] as string };
  // Our own connection attempts while it replays leave FATAL lines of their own: those are not how recovery ended.
  const fatal = [...log.matchAll(/(?:FATAL|PANIC):\s+([^\n]+)/g)]
    .map((m) => m[1] as string)
    .filter((l) => !/not yet accepting connections|is starting up|role "[^"]*" does not exist|is in recovery mode/.test(l))
    .at(-1);
  return { reached: false, said: fatal ?? 'the server log says nowhere where recovery stopped' };
}

/**
 * Scratch clusters a killed worker left in the temp dir (`pgbb-pitr-test-<owner>-<job>-…`) of this owner (one bot's
 * queues) whose label is not among `keep` (PITR tests still active): the server stopped if it runs, the directory removed.
 */
export async function removeLeftoverScratch(owner: string, keep: ReadonlySet<string>): Promise<string[]> {
  const removed: string[] = [];
  const mine = new RegExp(`^pgbb-pitr-test-(${owner.replace(/[^A-Za-z0-9]/g, '')}-[0-9a-f]{12})-[A-Za-z0-9]{6}$`);
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const m = mine.exec(name);
    if (!m || keep.has(m[1] as string)) continue;
    const dir = join(tmpdir(), name);
    const s: ScratchDir = {
      dir,
      dataDir: join(dir, 'data'),
      walDir: join(dir, 'wal'),
      log: join(dir, 'server.log'),
      user: await asServerUser(),
      remove: () => rm(dir, { recursive: true, force: true }),
    };
    const running = await access(join(s.dataDir, 'postmaster.pid')).then(
      () => true,
      () => false,
    );
    if (running) {
      const binDir = await clusterMajor(s.dataDir).then(serverBinDir, () => null);
      if (binDir) await pgCtl(s, binDir, ['-D', s.dataDir, '-m', 'immediate', '-w', 'stop']);
    }
    await s.remove();
    removed.push(name);
  }
  return removed;
}
