import { execa } from 'execa';
import { createServer } from 'node:net';
import { chown, mkdtemp, readFile, rm, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BotError } from '../errors.ts';
import { isExecutable } from '../postgres/index.ts';
import { reapAfterDeath } from './reaper.ts';

/**
 * Throwaway PostgreSQL and Redis servers for the demo, the tests and the benchmarks. They never touch the
 * machine's own services: fresh data directories, free ports, removed on stop.
 */

export interface EphemeralPostgres {
  url: string;
  port: number;
  binDir: string;
  /** The cluster's data directory, and the directory holding it, its log (server.log) and its socket. */
  dataDir: string;
  dir: string;
  stop(): Promise<void>;
}

export interface EphemeralRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The newest PostgreSQL server install: Debian keeps them in /usr/lib/postgresql/<major>/bin. */
export async function findPostgresBinDir(): Promise<string> {
  const root = '/usr/lib/postgresql';
  const majors = await readdir(root).catch(() => [] as string[]);
  const sorted = majors.filter((m) => /^\d+$/.test(m)).sort((a, b) => Number(b) - Number(a));
  for (const major of sorted) {
    const dir = join(root, major, 'bin');
    if ((await isExecutable(join(dir, 'initdb'))) && (await isExecutable(join(dir, 'pg_ctl')))) return dir;
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && (await isExecutable(join(dir, 'initdb'))) && (await isExecutable(join(dir, 'pg_ctl')))) return dir;
  }
  throw new BotError(
    'pg_tool_missing',
    'The PostgreSQL server binaries (initdb, pg_ctl) are not installed: `apt-get install postgresql` (Debian package postgresql).',
  );
}

/** initdb and postgres refuse to run as root; as root we run them as the `postgres` system user. */
export async function asServerUser(): Promise<{ prefix: string[]; uid?: number; gid?: number }> {
  if (process.getuid?.() !== 0) return { prefix: [] };
  const { stdout } = await execa('id', ['-u', 'postgres'], { reject: false });
  const { stdout: gid } = await execa('id', ['-g', 'postgres'], { reject: false });
  if (!stdout) {
    throw new BotError('pg_tool_missing', 'Running as root needs the `postgres` system user (Debian package postgresql creates it).');
  }
  return { prefix: ['runuser', '-u', 'postgres', '--'], uid: Number(stdout), gid: Number(gid) };
}

export async function startEphemeralPostgres(options: { settings?: Record<string, string> } = {}): Promise<EphemeralPostgres> {
  const binDir = await findPostgresBinDir();
  const dir = await mkdtemp(join(tmpdir(), 'pgbb-pg-'));
  const dataDir = join(dir, 'data');
  const user = await asServerUser();
  if (user.uid !== undefined && user.gid !== undefined) await chown(dir, user.uid, user.gid);
  const run = (file: string, args: string[]) => {
    const [cmd, ...rest] = [...user.prefix, join(binDir, file), ...args];
    return execa(cmd as string, rest, { stdin: 'ignore' });
  };
  await run('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '60',
    ...options.settings,
  };
  const conf = join(dataDir, 'postgresql.auto.conf');
  const serverLog = join(dir, 'server.log');
  let port: number;
  try {
    port = await onFreePorts(async () => {
      const free = await freePort();
      // Settings go into postgresql.auto.conf rather than pg_ctl's -o string, so no value is ever shell-parsed.
      const lines = Object.entries({ port: String(free), ...settings }).map(([k, v]) => `${k} = '${v.replace(/'/g, "''")}'`);
      await writeFile(conf, `${lines.join('\n')}\n`);
      if (user.uid !== undefined && user.gid !== undefined) await chown(conf, user.uid, user.gid);
      await run('pg_ctl', ['-D', dataDir, '-l', serverLog, '-w', '-t', '60', 'start']).catch(async (err: unknown) => {
        // Why the server stopped is in its log, not in pg_ctl's error: a taken port is said so, for the retry.
        if (!/Address already in use/.test(await readFile(serverLog, 'utf8').catch(() => ''))) throw err;
        await rm(serverLog, { force: true });
        throw new Error(`PostgreSQL could not listen on port ${free}: Address already in use`, { cause: err });
      });
      return free;
    });
  } catch (err) {
    // pg_ctl may have given up waiting on a server still starting: stop it, and leave nothing behind.
    await run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  // Stopped and removed even if this process is killed before stop() (reaper.ts); as the server's user.
  const reaper = reapAfterDeath([
    ...user.prefix,
    'sh',
    '-c',
    '"$0" -D "$1" -m immediate -w stop >/dev/null 2>&1; rm -rf "$2"',
    join(binDir, 'pg_ctl'),
    dataDir,
    dir,
  ]);
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    binDir,
    dataDir,
    dir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      reaper.cancel();
    },
  };
}

/**
 * `port`: start on that port (a test restarting Redis empty where the bot expects it); a free one otherwise.
 * `args`: more redis-server options (a cluster node's `--cluster-enabled yes …`).
 */
export async function startEphemeralRedis(options: { port?: number; args?: string[] } = {}): Promise<EphemeralRedis> {
  if (options.port !== undefined) return await startRedisOn(options.port, options.args ?? []);
  return await onFreePorts(async () => await startRedisOn(await freePort(), options.args ?? []));
}

/** redis-server stopped at start because a port it was to listen on (client or cluster bus) was already taken. */
export const portTaken = (err: unknown): boolean => err instanceof Error && /Address already in use/.test(err.message);

/**
 * Starts a server on ports freePort found free, again on new ones (twice at most) when `taken` says one was bound
 * by another process in between: its ports come from the same range as outgoing connections, so on a busy machine
 * that happens. `start` chooses its ports afresh on each call.
 */
export async function onFreePorts<T>(start: () => Promise<T>, taken: (err: unknown) => boolean = portTaken): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= 3 || !taken(err)) throw err;
    }
  }
}

async function startRedisOn(port: number, extra: string[]): Promise<EphemeralRedis> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'];
  const child = execa('redis-server', [...args, ...extra], {
    stdin: 'ignore',
    buffer: false,
    reject: false,
    cleanup: true,
  });
  const spawnFailed = new Promise<never>((_, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new BotError('pg_tool_missing', 'redis-server is not installed: `apt-get install redis-server` (Debian package redis-server).')
          : err,
      ),
    );
  });
  const ready = new Promise<void>((resolve, reject) => {
    let seen = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('Ready to accept connections')) resolve();
      if (seen.length > 100_000) seen = seen.slice(-10_000);
    });
    // 'close', not 'exit': its output may still be arriving when it exits, and the reason is in its last lines.
    child.once('close', (code) => reject(new Error(`redis-server exited early with code ${code}: ${seen.slice(-500)}`)));
  });
  await Promise.race([ready, spawnFailed]);
  child.stdout?.resume();
  const reaper = reapAfterDeath(['kill', '-TERM', String(child.pid)]);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      // execa follows with SIGKILL if redis-server has not exited 5 s later (forceKillAfterDelay's default).
      child.kill('SIGTERM');
      await child;
      reaper.cancel();
    },
  };
}
