import { existsSync } from 'node:fs';
import { appendFile, chmod, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { asServerUser, findPostgresBinDir, freePort, onFreePorts } from '../../src/dev/ephemeral.ts';
import { PREFETCH_DIR } from '../../src/postgres/pitr/wal-prefetch.ts';
import { withClient } from './postgres-helpers.ts';

export interface RecoveredServer {
  /** pg_ctl start's exit code and stderr: 0 when the server came up. */
  started: { exitCode: number | undefined; stderr: string };
  url: string;
  /** The server's own log (restored.log in the data directory). */
  log(): Promise<string>;
  /** Resolves once recovery has ended (promoted); fails with the log after a minute. */
  outOfRecovery(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * What an operator does before restore-pitr when the archive is root's and the server will run as postgres (the
 * tests run as root): those directories made readable by others, the WAL archived since included. Without it
 * restore-pitr refuses, naming what postgres may not read (pitr/server-access.ts).
 */
export async function readableByServer(dirs: string[]): Promise<void> {
  if ((await asServerUser()).uid === undefined) return;
  for (const dir of dirs) await execa('chmod', ['-R', 'a+rX', dir]);
}

/**
 * The same, again every 300 ms while the server recovers: a worker still archiving writes new snapshots of the
 * segment being written as root, 0640 (an operator's group would let postgres read them; the tests' root has none),
 * and one written after the first chmod was unreadable to the recovering server (CI: wal-fetch refused it).
 */
function keepReadable(dirs: string[]): () => void {
  if (dirs.length === 0) return () => undefined;
  const timer = setInterval(() => void readableByServer(dirs).catch(() => undefined), 300);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Starts a server on a data directory restore-pitr laid out, as the server's own user (postgres when the tests run
 * as root): a free port, its socket in the data directory. `readable` are directories that user must read (the
 * archive restore_command fetches from).
 */
export async function startRecovered(dataDir: string, readable: string[] = []): Promise<RecoveredServer> {
  const user = await asServerUser();
  let keep: (() => void) | undefined;
  const conf = join(dataDir, 'postgresql.auto.conf');
  await appendFile(conf, `unix_socket_directories = '${dataDir}'\nlisten_addresses = '127.0.0.1'\n`);
  const pgCtl = join(await findPostgresBinDir(), 'pg_ctl');
  const ctl = (args: string[]) => execa(user.prefix[0] ?? pgCtl, [...user.prefix.slice(1), ...(user.prefix.length ? [pgCtl] : []), ...args], { reject: false });
  const logFile = join(dataDir, 'restored.log');
  // A free port can be taken before the server binds it (it then stops before recovery begins): a new port. The
  // last `port` line of the file is the one the server reads.
  const { port, started } = await onFreePorts(async () => {
    const port = await freePort();
    await appendFile(conf, `port = '${port}'\n`);
    if (user.uid !== undefined) await execa('chown', ['-R', `${user.uid}:${user.gid}`, dataDir]);
    await readableByServer(readable);
    await chmod(dataDir, 0o700);
    keep ??= keepReadable(readable);
    const r = await ctl(['-D', dataDir, '-l', logFile, '-w', '-t', '120', 'start']);
    if (r.exitCode !== 0 && /Address already in use/.test(await readFile(logFile, 'utf8').catch(() => ''))) {
      await rm(logFile, { force: true });
      throw new Error(`the recovered server could not listen on port ${port}: Address already in use`);
    }
    return { port, started: r };
  });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const log = () =>
    execa('cat', [logFile]).then(
      (r) => r.stdout,
      () => 'no log',
    );
  return {
    started: { exitCode: started.exitCode, stderr: String(started.stderr) },
    url,
    log,
    async outOfRecovery() {
      for (let i = 0; ; i++) {
        const inRecovery = await withClient(url, async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r).catch(() => true);
        if (!inRecovery) return;
        if (i > 600) throw new Error(`recovery never finished:\n${await log()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      keep?.();
      await ctl(['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      // restore-pitr's WAL read-ahead leaves once the server has stopped (wal-prefetch.ts: recoveryEnded), removing
      // its directory; a test that removes the data directory meanwhile would race its writes (ENOTEMPTY).
      const ahead = join(dataDir, 'pg_wal', PREFETCH_DIR);
      for (let i = 0; existsSync(ahead); i++) {
        if (i > 300) throw new Error(`the WAL prefetcher did not leave ${ahead} within 30 s of the server's stop`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/**
 * A recovery seen from the outside: the server started on `dataDir`, out of recovery, the marker labels it holds
 * (oldest first) and its log; stopped again. A server that does not start fails with its own log.
 */
export async function recoveredMarkers(dataDir: string, readable: string[] = []): Promise<{ labels: string[]; log: string }> {
  const server = await startRecovered(dataDir, readable);
  try {
    if (server.started.exitCode !== 0) throw new Error(`the recovered server did not start: ${server.started.stderr}\n${await server.log()}`);
    await server.outOfRecovery();
    const labels = await withClient(server.url, async (c) =>
      (await c.query<{ label: string }>('SELECT label FROM markers ORDER BY at')).rows.map((r) => r.label),
    );
    return { labels, log: await server.log() };
  } finally {
    await server.stop();
  }
}
