import { appendFile, chown, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { asServerUser, freePort } from '../../src/dev/ephemeral.ts';
import { reapAfterDeath } from '../../src/dev/reaper.ts';
import { LocalWalStore } from '../../src/postgres/pitr/wal-store.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { readableByServer } from '../support/recovered-server.ts';
import { until as waitFor } from '../support/until.ts';
import type { ShopPitr } from './pitr-harness.ts';

export interface Standby {
  dataDir: string;
  dir: string;
  conf: string;
  url: string;
  ctl(args: string[]): Promise<unknown>;
  stop(): Promise<void>;
}

/**
 * What a failover test does to the shop's cluster (pitr-harness.ts) and around it: SQL on it, a streaming standby of
 * it, the standby promoted on the primary's port (so the target's URL reaches it), and restore-pitr as on a new host.
 */
export function failoverKit(shop: ShopPitr) {
  const { h, pg: a, work } = shop;
  const until = <T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 60_000) => waitFor(what, f, timeoutMs, { pollMs: 200 });
  /** A PostgreSQL program as the server's user (postgres when the tests run as root), as ephemeral.ts runs them. */
  const asServer = async (program: string, args: string[]) => {
    const user = await asServerUser();
    const [cmd, ...rest] = [...user.prefix, join(a.binDir, program), ...args];
    return execa(cmd as string, rest, { stdin: 'ignore', all: true });
  };
  const sql = <T>(url: string, text: string) => withClient(url, async (c) => (await c.query(text)).rows as T[]);
  const write = (url: string, from: string, n: number) =>
    sql(url, `CREATE TABLE IF NOT EXISTS orders (n int, written_on text); INSERT INTO orders SELECT g, '${from}' FROM generate_series(1, ${n}) g`);
  const switchWal = async (url: string) => ((await sql<{ name: string }>(url, 'SELECT pg_walfile_name(pg_switch_wal()) AS name'))[0] as { name: string }).name;
  const store = () => new LocalWalStore(h.backupDir, 'shop');
  const names = async () => (await store().list()).map((e) => e.name);
  const archived = (name: string, timeoutMs?: number) =>
    until(`WAL ${name} archived`, async () => ((await names()).includes(name) ? true : undefined), timeoutMs);
  const counts = (url: string) => sql<{ written_on: string; n: number }>(url, 'SELECT written_on, count(*)::int AS n FROM orders GROUP BY 1 ORDER BY 1');
  const standbys: Standby[] = [];

  /** A streaming standby of A (pg_basebackup -R), on a port of its own, its socket in its own directory. */
  async function startStandby(): Promise<Standby> {
    const user = await asServerUser();
    const dir = await mkdtemp(join(tmpdir(), 'pgbb-pg-standby-'));
    if (user.uid !== undefined) await chown(dir, user.uid, user.gid as number);
    const dataDir = join(dir, 'data');
    await asServer('pg_basebackup', ['-D', dataDir, '-d', `host=127.0.0.1 port=${a.port} user=postgres`, '-R', '-X', 'stream', '-c', 'fast']);
    const conf = join(dataDir, 'postgresql.auto.conf');
    const port = await freePort();
    await appendFile(conf, `unix_socket_directories = '${dir}'\nport = '${port}'\n`);
    const reaper = reapAfterDeath([
      ...user.prefix,
      'sh',
      '-c',
      '"$0" -D "$1" -m immediate -w stop >/dev/null 2>&1; rm -rf "$2"',
      join(a.binDir, 'pg_ctl'),
      dataDir,
      dir,
    ]);
    const ctl = (args: string[]) => asServer('pg_ctl', ['-D', dataDir, ...args]);
    await ctl(['-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
    const standby: Standby = {
      dataDir,
      dir,
      conf,
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      ctl,
      async stop() {
        await ctl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
        reaper.cancel();
      },
    };
    standbys.push(standby);
    return standby;
  }

  /**
   * The standby started again on A's port (A must be stopped) and promoted: the target's URL now reaches it. With
   * `first`, promoted on its own port before it moves to A's: the bot's receiver then never reaches it as a standby
   * (one that does follows the promotion like a cascading standby, and never meets the refusal a test is after).
   */
  async function promoteOnPrimaryPort(b: Standby, o: { first?: boolean } = {}): Promise<void> {
    const start = () => b.ctl(['-l', join(b.dir, 'server.log'), '-w', '-t', '60', 'start']);
    await b.ctl(['-m', 'fast', '-w', 'stop']).catch(() => undefined);
    if (o.first) {
      await start();
      await b.ctl(['-w', 'promote']);
      await b.ctl(['-m', 'fast', '-w', 'stop']);
    }
    await appendFile(b.conf, `port = '${a.port}'\n`);
    await start();
    if (!o.first) await b.ctl(['-w', 'promote']);
  }

  /** restore-pitr as on the new host: the bot's config and archive, the identity file readable by the server's user. */
  async function restorePitr(time: string, dataDir: string, ...more: string[]) {
    const identityFile = join(work, 'backup.key');
    await copyFile(h.identityFile, identityFile);
    const user = await asServerUser();
    if (user.uid !== undefined) await chown(identityFile, user.uid, user.gid as number);
    await readableByServer([h.backupDir, work]);
    return execa('node', ['bin/pg-backup-bot.js', 'restore-pitr', 'shop', `--time=${time}`, `--data-dir=${dataDir}`, ...more], {
      env: {
        PATH: process.env.PATH ?? '',
        BOT_CONFIG: join(work, 'pg-backup-bot.yml'),
        SHOP_URL: a.url,
        BACKUP_DIR: h.backupDir,
        BACKUP_ENCRYPTION_RECIPIENT: h.config.encryption.recipients[0] as string,
        BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
      },
      extendEnv: false,
      reject: false,
    });
  }

  return {
    until,
    asServer,
    sql,
    write,
    switchWal,
    store,
    names,
    archived,
    counts,
    startStandby,
    promoteOnPrimaryPort,
    restorePitr,
    stopStandbys: async () => {
      for (const s of standbys) await s.stop();
    },
  };
}
