import { createHash } from 'node:crypto';
import pg from 'pg';
import { escapeIdentifier } from 'pg';
import { BotError } from '../../errors.ts';
import { connectClient, pgClientConfig, serverLabel } from '../connection.ts';
import { clientFailure } from '../failures.ts';

/**
 * Databases the bot creates and drops: scratch databases for restore tests and new databases for restores.
 * Every statement runs on the maintenance database named in the server URL (the role's usual database), never
 * in the database being created or dropped.
 */

export const SCRATCH_PREFIX = 'pgbb_rt_';
const SCRATCH_NAME = /^pgbb_rt_[0-9a-f]{6}_[0-9a-f]{12}$/;

const hex = (text: string, n: number) => createHash('sha256').update(text).digest('hex').slice(0, n);

/**
 * `pgbb_rt_<6 hex of scope>_<12 hex of key>`. The key (a job id) gives the same job the same name, so a starting
 * worker can tell which scratch databases belong to jobs still running and which a crash left behind. The scope
 * (the queue prefix) keeps two deployments that share a database server from dropping each other's databases.
 */
export function scratchName(key: string, scope = 'default'): string {
  return `${scratchScopePrefix(scope)}${hex(key, 12)}`;
}

export function scratchScopePrefix(scope = 'default'): string {
  return `${SCRATCH_PREFIX}${hex(scope, 6)}_`;
}

export function isScratchName(name: string): boolean {
  return SCRATCH_NAME.test(name);
}

/** The server URL pointed at another database on the same server, with the same credentials and options. */
export function databaseUrl(serverUrl: string, database: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${encodeURIComponent(database)}`;
  // A dbname parameter would win over the path in parsePgUrl.
  u.searchParams.delete('dbname');
  return u.toString();
}

export async function withMaintenanceClient<T>(serverUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(pgClientConfig(serverUrl));
  // A dropped connection emits 'error'; without a listener Node would crash the whole bot.
  client.on('error', () => undefined);
  try {
    await connectClient(client);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw clientFailure(err, { tool: 'pg-backup-bot', server: serverLabel(serverUrl) });
  }
  try {
    // Connected to the target's own database, its settings apply: one set read-only (an archive, a reporting copy)
    // refused CREATE DATABASE, so it could never be restore-tested or replaced (QA).
    await client.query('SET default_transaction_read_only = off');
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function sqlState(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/**
 * `CREATE DATABASE … TEMPLATE template0`: whatever someone added to template1 (extensions, tables) would
 * otherwise collide with the restore and show up as extra objects in the comparison. `localeOptions`: the
 * source's encoding and collation (db-properties.ts), so text sorts in the copy as it did in the source.
 */
export async function createDatabase(serverUrl: string, name: string, localeOptions = ''): Promise<void> {
  const server = serverLabel(serverUrl);
  await withMaintenanceClient(serverUrl, async (c) => {
    try {
      // The options come from parseDatabaseScript, which keeps only known `KEY = literal` locale options.
      await c.query(`CREATE DATABASE ${escapeIdentifier(name)} TEMPLATE template0${localeOptions ? ` ${localeOptions}` : ''}`);
    } catch (err) {
      const state = sqlState(err);
      if (state === '42P04') {
        throw new BotError(
          'already_running',
          `The database "${name}" already exists on ${server}; it was left untouched. Pick another name, or drop it if it is a leftover.`,
          {
            cause: err,
          },
        );
      }
      if (state === '42501') {
        throw new BotError(
          'pg_auth_failed',
          `The bot's role may not create databases on ${server}; restore tests and restores need a role with CREATEDB (ALTER ROLE … CREATEDB).`,
          { cause: err },
        );
      }
      throw clientFailure(err, { tool: 'CREATE DATABASE', server });
    }
  });
}

/**
 * `DROP DATABASE IF EXISTS … WITH (FORCE)` (PostgreSQL 13+): FORCE ends sessions still connected, e.g. a
 * pg_restore worker killed by a cancel a moment ago. Older servers get the same by terminating them first.
 */
export async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  const server = serverLabel(serverUrl);
  await withMaintenanceClient(serverUrl, async (c) => {
    try {
      // A copy of a template database is one too (db-properties.ts), and a template cannot be dropped.
      const template = await c.query('SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate', [name]);
      if ((template.rowCount ?? 0) > 0) await c.query(`ALTER DATABASE ${escapeIdentifier(name)} IS_TEMPLATE = false`);
      const { rows } = await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
      if (Number(rows[0]?.v ?? 0) >= 130000) {
        await c.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(name)} WITH (FORCE)`);
      } else {
        await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
        await c.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(name)}`);
      }
    } catch (err) {
      throw clientFailure(err, { tool: 'DROP DATABASE', server });
    }
  });
}

export async function databaseExists(serverUrl: string, name: string): Promise<boolean> {
  return withMaintenanceClient(serverUrl, async (c) => {
    const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return (rowCount ?? 0) > 0;
  });
}

/**
 * Drops every scratch database on the server whose name is not in `keep` (the scratch names of jobs still
 * running): what a killed worker or a crashed host left behind. Returns the names dropped.
 */
export async function dropLeftoverScratchDatabases(serverUrl: string, keep: Set<string>, scope = 'default'): Promise<string[]> {
  const mine = scratchScopePrefix(scope);
  const names = await withMaintenanceClient(serverUrl, async (c) => {
    // A regex, not LIKE: `_` is a LIKE wildcard, and only names scratchName() makes are ours to drop.
    const { rows } = await c.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname ~ '^pgbb_rt_[0-9a-f]{6}_[0-9a-f]{12}$' ORDER BY datname`,
    );
    return rows.map((r) => r.datname);
  });
  const dropped: string[] = [];
  for (const name of names) {
    if (keep.has(name) || !isScratchName(name) || !name.startsWith(mine)) continue;
    await dropDatabase(serverUrl, name);
    dropped.push(name);
  }
  return dropped;
}
