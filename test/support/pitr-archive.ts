import { chown, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findAgeEngine } from '../../src/crypto/age-cli.ts';
import { generateKeyPair } from '../../src/crypto/age.ts';
import { asServerUser } from '../../src/dev/ephemeral.ts';
import { type BaseBackup, runBaseBackup } from '../../src/postgres/pitr/base-backup.ts';
import { startWalArchive } from '../../src/postgres/pitr/wal-archive.ts';
import { LocalWalStore, type WalEntry } from '../../src/postgres/pitr/wal-store.ts';
import { findPgProgram, findPgTools } from '../../src/postgres/tools.ts';
import { silentLog, withClient } from './postgres-helpers.ts';

const DAY = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The WAL archive of `target` streaming from `url` into `root` (encrypted to a fresh age key), as the worker runs it,
 * and the base backup the CLI takes: the setup every PITR test starts from.
 */
export async function startTestArchive(o: {
  url: string;
  root: string;
  spool: string;
  target: string;
  slot: string;
  backoff?: { minMs: number; maxMs: number };
}) {
  const keys = await generateKeyPair();
  const tools = await findPgTools({ serverMajor: 15 });
  const [pgReceivewal, pgBasebackup] = await Promise.all(['pg_receivewal', 'pg_basebackup'].map((n) => findPgProgram(n, tools.pgDump, tools.major)));
  const common = { zstd: 'zstd', level: 2, recipients: [keys.recipient], ageEngine: await findAgeEngine() };
  const store = new LocalWalStore(o.root, o.target);
  const archive = startWalArchive({
    ...common,
    target: o.target,
    pgReceivewal: pgReceivewal as string,
    replicationUrl: o.url,
    slot: o.slot,
    spool: o.spool,
    store,
    log: silentLog,
    sweepMs: 100,
    ...(o.backoff ? { backoff: o.backoff } : {}),
  });
  const baseBackup = () => runBaseBackup({ ...common, target: o.target, root: o.root, replicationUrl: o.url, pgBasebackup: pgBasebackup as string });
  /**
   * What `pg-backup-bot restore-pitr` needs, in `dir`: the identity file (owned by the server's user, who runs
   * restore_command), a config file naming the target, and the environment pointing at both and at the archive.
   */
  const restoreEnv = async (dir: string) => {
    const identityFile = join(dir, 'key.txt');
    await writeFile(identityFile, keys.identityFileText, { mode: 0o600 });
    const config = join(dir, 'pg-backup-bot.yml');
    await writeFile(config, `encryption: age\ntargets:\n  - name: ${o.target}\n    urlEnv: APP_URL\n    environment: production\n`);
    const user = await asServerUser();
    if (user.uid !== undefined) await chown(identityFile, user.uid, user.gid as number);
    const env: Record<string, string> = {
      BOT_CONFIG: config,
      APP_URL: o.url,
      BACKUP_DIR: o.root,
      BACKUP_ENCRYPTION_RECIPIENT: keys.recipient,
      BACKUP_ENCRYPTION_IDENTITY_FILE: identityFile,
    };
    return { env, identityFile };
  };
  return { keys, common, store, archive, baseBackup, restoreEnv };
}

/**
 * A real PITR archive of `target` under `root`: the WAL archive streaming from `url` while `count` real base
 * backups are taken, a segment switched before and after each; stopped once the last segment is archived. Each
 * base backup's start segment is asked of the server (pg_walfile_name), not of the bot.
 */
export async function pitrArchiveWithBases(o: { url: string; root: string; spool: string; target: string; slot: string; count: number }) {
  const { keys, store, archive, baseBackup } = await startTestArchive({ ...o, backoff: { minMs: 100, maxMs: 500 } });
  const switchWal = () => withClient(o.url, (c) => c.query('CREATE TABLE IF NOT EXISTS t (n int); INSERT INTO t VALUES (1); SELECT pg_switch_wal()'));
  const walfile = (lsn: string | null) =>
    withClient(o.url, async (c) => (await c.query('SELECT pg_walfile_name(coalesce($1::pg_lsn, pg_current_wal_lsn())) AS n', [lsn])).rows[0].n as string);
  const bases: BaseBackup[] = [];
  const startSegment = new Map<string, string>();
  try {
    for (let i = 0; !archive.state().receiver.up; i++) {
      if (i > 300) throw new Error('the WAL receiver never came up');
      await sleep(100);
    }
    for (let i = 0; i < o.count; i++) {
      await switchWal();
      const b = await baseBackup();
      bases.push(b);
      startSegment.set(b.id, await walfile(b.startLsn));
      await switchWal();
      // Base backup ids are stamped to the second.
      await sleep(1100);
    }
    const last = await walfile(null);
    await switchWal();
    for (let i = 0; !(await store.entry(last)); i++) {
      if (i > 600) throw new Error(`WAL ${last} never archived`);
      await sleep(100);
    }
  } finally {
    await archive.stop();
  }
  return { keys, bases, startSegment, store };
}

/** Moves a base backup's finishedAt (and startedAt) `daysAgo` days back, in the test's own storage. */
export async function backdateBase(root: string, b: BaseBackup, daysAgo: number): Promise<BaseBackup> {
  const file = join(root, b.target, '_base', b.id, 'base.json');
  const rec = JSON.parse(await readFile(file, 'utf8')) as BaseBackup;
  const finished = new Date(Date.now() - daysAgo * DAY);
  rec.finishedAt = finished.toISOString();
  rec.startedAt = new Date(finished.getTime() - 60_000).toISOString();
  await writeFile(file, JSON.stringify(rec));
  return rec;
}

/** Moves a WAL file's archivedAt `daysAgo` days back. */
export async function backdateWal(store: LocalWalStore, e: WalEntry, daysAgo: number): Promise<void> {
  await writeFile(join(store.dir, `${e.name}.json`), JSON.stringify({ ...e, archivedAt: new Date(Date.now() - daysAgo * DAY).toISOString() }));
}

/** Writes a little (table `probe`) and switches WAL on the server at `url`: the segment just completed, by name. */
export const completeSegment = (url: string) =>
  withClient(url, async (c) => {
    await c.query('CREATE TABLE IF NOT EXISTS probe (n int)');
    await c.query('INSERT INTO probe SELECT generate_series(1, 1000)');
    // The segment the switch completed (or, with nothing written since the last switch, the one before).
    const { rows } = await c.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    return rows[0]?.name as string;
  });

/** Whether a receiver holds the slot now: a new slot reserves WAL from its first connection, not from its creation. */
export const slotActive = (url: string, slot: string) =>
  withClient(url, async (c) => {
    const { rows } = await c.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    return rows[0]?.active === true;
  });
