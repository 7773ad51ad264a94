import { createHash } from 'node:crypto';
import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import { BotError } from '../../errors.ts';
import { serverLabel } from '../connection.ts';
import { databaseUrl, withMaintenanceClient } from './scratch.ts';

/**
 * Replacing a database with a restored copy (`/restore <id> --into=<db>` with nothing selected): the copy is
 * restored and verified beside it under a staging name first; only then are the names swapped, in one
 * transaction, after the current database stops taking connections and its sessions are ended. The current
 * database is kept under `<name>_replaced_<stamp>` until an admin drops it. Any failure before the swap leaves
 * the current database as it was.
 */

/** What the confirmation shows about the database to be replaced; null when there is none of that name. */
export interface DatabaseInUse {
  bytes: number;
  connections: number;
  owner: string;
  /** Which database this is: a swap or a DROP and CREATE under the same name gives another one. */
  oid: number;
}

export async function describeDatabase(serverUrl: string, name: string): Promise<DatabaseInUse | null> {
  return withMaintenanceClient(serverUrl, async (c) => {
    const { rows } = await c.query<{ bytes: string; connections: string; owner: string; oid: string }>(
      `SELECT pg_database_size(d.oid)::text AS bytes, pg_get_userbyid(d.datdba) AS owner, d.oid::text AS oid,
              (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname AND a.pid <> pg_backend_pid())::text AS connections
       FROM pg_database d WHERE d.datname = $1`,
      [name],
    );
    const row = rows[0];
    return row ? { bytes: Number(row.bytes), connections: Number(row.connections), owner: row.owner, oid: Number(row.oid) } : null;
  });
}

/** The size of each of `names` that exists on the server, in one query. */
export async function databaseSizes(serverUrl: string, names: string[]): Promise<Map<string, number>> {
  if (names.length === 0) return new Map();
  return withMaintenanceClient(serverUrl, async (c) => {
    const { rows } = await c.query<{ name: string; bytes: string }>(
      'SELECT datname AS name, pg_database_size(oid)::text AS bytes FROM pg_database WHERE datname = ANY($1::text[])',
      [names],
    );
    return new Map(rows.map((r) => [r.name, Number(r.bytes)]));
  });
}

/** The staging database a replacement is restored into: short, ours, and the same for the same job. */
export function stagingName(jobId: string): string {
  return `pgbb_swap_${createHash('sha256').update(jobId).digest('hex').slice(0, 12)}`;
}

/** `<name>_replaced_<YYYYMMDDTHHMMSS>`, cut so the whole stays within PostgreSQL's 63 bytes. */
export function replacedName(name: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').slice(0, 15).toLowerCase();
  const suffix = `_replaced_${stamp}`;
  return `${Buffer.from(name)
    .subarray(0, 63 - suffix.length)
    .toString()
    .replace(/\uFFFD+$/, '')}${suffix}`;
}

/**
 * The swap itself. Returns sentences for what did not go as planned after the swap (the owner could not be set
 * back): the swap stands, the reader should know; and its times: `at`, the commit that gave the name to the restored
 * copy, and `refusedMs`, how long the name refused connections before it (from the moment the old database stopped
 * taking them: whatever was written to it until then is in the kept copy). Throws when the swap did not happen; then
 * `name` is the database it was, taking connections again, and the staging copy is still there to look at.
 */
export async function swapDatabases(
  targetUrl: string,
  o: { name: string; staging: string; keepAs: string; owner: string },
): Promise<{ notes: string[]; at: Date; refusedMs: number }> {
  const server = serverLabel(targetUrl);
  const serverUrl = maintenanceUrl(targetUrl, o.name);
  const [name, staging, keepAs] = [o.name, o.staging, o.keepAs].map((n) => escapeIdentifier(n));
  return withMaintenanceClient(serverUrl, async (c) => {
    await c.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`).catch((err: unknown) => {
      throw new BotError('pg_auth_failed', `Could not stop new connections to ${o.name} on ${server} (${(err as Error).message}); it was left as it was.`, {
        cause: err,
      });
    });
    // A monotonic clock for the length: a wall clock stepped back meanwhile gives no negative duration.
    const refused = performance.now();
    try {
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [o.name]);
      await waitForNoSessions(c, o.name);
      await c.query('BEGIN');
      await c.query(`ALTER DATABASE ${name} RENAME TO ${keepAs}`);
      await c.query(`ALTER DATABASE ${staging} RENAME TO ${name}`);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => undefined);
      throw new BotError(
        'storage_failed',
        `The swap on ${server} did not happen (${(err as Error).message}); ${o.name} is as it was and takes connections again.`,
        {
          cause: err,
        },
      );
    }
    const at = new Date();
    const refusedMs = Math.max(0, Math.round(performance.now() - refused));
    const notes: string[] = [];
    // The kept database may be looked at (and dropped) by an admin; the new one belongs to whom the old one did.
    await c
      .query(`ALTER DATABASE ${keepAs} ALLOW_CONNECTIONS true`)
      .catch((err: unknown) => notes.push(`${o.keepAs} still refuses connections (${(err as Error).message}).`));
    await c
      .query(`ALTER DATABASE ${name} OWNER TO ${escapeIdentifier(o.owner)}`)
      .catch((err: unknown) => notes.push(`${o.name} is owned by the bot's role, not ${o.owner} as before (${(err as Error).message}).`));
    return { notes, at, refusedMs };
  });
}

/**
 * Where to ALTER or RENAME `name` from: not the database itself (a target's URL names it), which ALTER DATABASE
 * refuses as the current one, and which takes no session while it refuses connections.
 */
const maintenanceUrl = (targetUrl: string, name: string) => databaseUrl(targetUrl, name === 'postgres' ? 'template1' : 'postgres');

/**
 * A worker killed during a swap, after `name` stopped taking connections and before the renames committed, leaves
 * the live database refusing every new session (ALLOW_CONNECTIONS is not undone by the rollback) and this job's
 * staging database beside it. Found that way, `name` is opened again: the sentence says so. Null otherwise.
 */
export async function reopenAfterDeadSwap(targetUrl: string, name: string, staging: string): Promise<string | null> {
  return withMaintenanceClient(maintenanceUrl(targetUrl, name), async (c) => {
    const { rows } = await c.query<{ datname: string; datallowconn: boolean }>(
      'SELECT datname, datallowconn FROM pg_database WHERE datname = ANY($1::text[])',
      [[name, staging]],
    );
    const live = rows.find((r) => r.datname === name);
    if (!live || live.datallowconn || !rows.some((r) => r.datname === staging)) return null;
    await c.query(`ALTER DATABASE ${escapeIdentifier(name)} ALLOW_CONNECTIONS true`);
    return `${name} refused connections: an earlier attempt of this job was stopped during its swap, after closing ${name} to new sessions; it takes connections again`;
  });
}

/** pg_terminate_backend only signals: wait (up to 10 s) for the sessions to be gone, or RENAME fails. */
async function waitForNoSessions(c: pg.Client, name: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await c.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    if (rows[0]?.n === '0') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sessions of ${name} did not end within 10 s`);
}

/** Our advisory lock class ('pgbb'), the first of the two keys: apart from an application's own advisory locks. */
const LOCK_CLASS = 0x70676262;

/**
 * One replacement of `name` at a time on its server, whoever runs it (a worker on any host, the CLI): a session
 * advisory lock on the maintenance database, held for the whole replacement and released with its session (a killed
 * worker's too). A second is refused at once: run after the first, it would move the fresh copy aside (QA: two
 * replacements 1.5 s apart both swapped, and the verdict named the wrong kept database). The session carries the job
 * id: a retry of the same job finds its dead attempt's session still holding the lock (a host lost, its TCP not yet
 * timed out) and ends it. `held` is asked right before the swap: a lock lost with its session (idle_session_timeout,
 * a network drop) refuses the swap rather than let a second replacement through unseen.
 */
export async function withReplacementLock<T>(targetUrl: string, name: string, jobId: string, fn: (held: () => Promise<void>) => Promise<T>): Promise<T> {
  const server = serverLabel(targetUrl);
  const mine = `pg-backup-bot replace ${jobId}`.slice(0, 63);
  return withMaintenanceClient(maintenanceUrl(targetUrl, name), async (c) => {
    await c.query("SELECT set_config('application_name', $1, false)", [mine]);
    const take = async () => (await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [LOCK_CLASS, name])).rows[0]?.ok === true;
    const holder = `SELECT l.pid, a.application_name AS app FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.classid = $1::int4::oid AND l.objid = hashtext($2)::oid AND l.objsubid = 2 AND l.granted`;
    let ok = await take();
    if (!ok) {
      const { rows } = await c.query<{ pid: number; app: string }>(holder, [LOCK_CLASS, name]);
      const own = rows.find((r) => r.app === mine && r.pid !== undefined);
      if (own) {
        // This job's own earlier attempt: its worker is gone, its session not yet.
        await c.query('SELECT pg_terminate_backend($1)', [own.pid]).catch(() => undefined);
        for (let i = 0; i < 50 && !ok; i++) {
          await new Promise((r) => setTimeout(r, 100));
          ok = await take();
        }
      }
    }
    if (!ok) {
      throw new BotError(
        'already_running',
        `Another replacement of ${name} on ${server} is running; nothing was changed. Its verdict says where the database it replaces is kept; replace again after it, if still needed.`,
      );
    }
    const held = async () => {
      const still = await c
        .query<{ held: boolean }>(`SELECT EXISTS (${holder} AND l.pid = pg_backend_pid()) AS held`, [LOCK_CLASS, name])
        .then((r) => r.rows[0]?.held === true)
        .catch(() => false);
      if (!still)
        throw new BotError(
          'storage_failed',
          `The replacement's lock on ${name} (${server}) was lost with its session; nothing was swapped, so another replacement cannot have been run over. Replace again.`,
        );
    };
    try {
      return await fn(held);
    } finally {
      await c.query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_CLASS, name]).catch(() => undefined);
    }
  });
}
