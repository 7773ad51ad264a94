import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClientConfig } from 'pg';
import { BotError } from '../errors.ts';
import { makeOwnedTemp, PASSFILE_TEMP, sweepOrphanedTemps } from './owned-temps.ts';

/**
 * A target URL holds a password, so it never reaches argv (visible in `ps` and /proc/<pid>/cmdline) nor a log.
 * Child processes get the libpq environment (PGHOST, PGUSER, …) and the password through a private 0600
 * passfile named by PGPASSFILE; the `pg` library gets a config object.
 */

/** URL query parameters libpq understands, and the environment variable that carries each to a child. */
const PARAM_ENV: Record<string, string> = {
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  sslsni: 'PGSSLSNI',
  ssl_min_protocol_version: 'PGSSLMINPROTOCOLVERSION',
  ssl_max_protocol_version: 'PGSSLMAXPROTOCOLVERSION',
  gssencmode: 'PGGSSENCMODE',
  krbsrvname: 'PGKRBSRVNAME',
  channel_binding: 'PGCHANNELBINDING',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  application_name: 'PGAPPNAME',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  client_encoding: 'PGCLIENTENCODING',
};

export interface PgTarget {
  /** libpq environment without the password: safe to log (values only, no secrets). */
  env: Record<string, string>;
  password: string | undefined;
}

/** Splits a postgres:// URL into libpq environment variables and the password. */
export function parsePgUrl(url: string): PgTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BotError('config_invalid', 'The database URL of this target is not a valid postgres:// URL.');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new BotError('config_invalid', 'The database URL of this target must start with postgres:// or postgresql://.');
  }
  // A `%` in a password not written as %25 (QA: "URI malformed", said as a failed query): which part, and what to do.
  const decode = (part: string, what: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new BotError(
        'config_invalid',
        `The database URL's ${what} has a % that is not followed by two hex digits: percent-encode special characters there (% as %25, @ as %40, : as %3A, / as %2F).`,
      );
    }
  };
  const env: Record<string, string> = {};
  // postgres: is not a "special" scheme for WHATWG URL, so a socket path (%2Fvar%2Frun%2Fpostgresql) stays encoded.
  const host = decode(u.hostname, 'host').replace(/^\[(.*)\]$/, '$1');
  if (host) env.PGHOST = host;
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decode(u.username, 'user name');
  const db = decode(u.pathname.replace(/^\//, ''), 'database name');
  if (db) env.PGDATABASE = db;
  let password = u.password ? decode(u.password, 'password') : undefined;
  for (const [key, value] of u.searchParams) {
    if (key === 'password') {
      password = value;
      continue;
    }
    const name = PARAM_ENV[key];
    if (!name) {
      throw new BotError('config_invalid', `The database URL has a parameter pg-backup-bot does not support: "${key}".`);
    }
    env[name] = value;
  }
  if (password !== undefined && /[\r\n]/.test(password)) {
    throw new BotError('config_invalid', 'The database password contains a line break, which a libpq passfile cannot hold.');
  }
  return { env, password };
}

/** `host:port` (or the socket directory) for sentences people read; never includes the user or password. */
export function serverLabel(url: string): string {
  try {
    const { env } = parsePgUrl(url);
    const host = env.PGHOST ?? 'localhost';
    return `${host}:${env.PGPORT ?? '5432'}`;
  } catch {
    return 'the configured server';
  }
}

/** The parent's environment without any PG* variable, so a stray PGPASSWORD or PGSERVICE cannot steer a child. */
export function cleanBaseEnv(base: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined && !k.startsWith('PG')) out[k] = v;
  return out;
}

/** libpq passfile escaping: `\` and `:` are backslash-escaped. */
function passfileLine(password: string): string {
  return `*:*:*:*:${password.replace(/\\/g, '\\\\').replace(/:/g, '\\:')}\n`;
}

/** The first passfile of this process removes those of killed processes, once (owned-temps.ts). */
let sweptPassfiles: Promise<unknown> | undefined;

/**
 * Runs `fn` with a complete child environment (use it with execa's `extendEnv: false`). A password goes into a
 * passfile in a fresh 0700 directory, removed when `fn` settles — even when it throws.
 */
export async function withPgEnv<T>(url: string, fn: (env: Record<string, string>) => Promise<T>, options: { baseEnv?: NodeJS.ProcessEnv } = {}): Promise<T> {
  const { env, password } = parsePgUrl(url);
  const childEnv: Record<string, string> = {
    ...cleanBaseEnv(options.baseEnv),
    PGAPPNAME: 'pg-backup-bot',
    // Without a bound, an unreachable host hangs a dump for minutes on TCP retries.
    PGCONNECT_TIMEOUT: '15',
    ...env,
  };
  if (password === undefined) return fn(childEnv);
  // Named for this process, so the next process removes it if this one is killed before its `finally` (QA: a
  // `kill -9` left the password in /tmp for good); the first passfile of a process sweeps the killed ones' once.
  sweptPassfiles ??= sweepOrphanedTemps(tmpdir(), undefined, Date.now(), PASSFILE_TEMP).catch(() => []);
  await sweptPassfiles;
  const dir = await makeOwnedTemp(tmpdir(), PASSFILE_TEMP, undefined, { sweep: false });
  try {
    const file = join(dir, 'pgpass');
    // libpq ignores a passfile that group or others can read.
    await writeFile(file, passfileLine(password), { mode: 0o600, flag: 'wx' });
    return await fn({ ...childEnv, PGPASSFILE: file });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Config for the `pg` library. sslmode follows libpq where pg can: `require` encrypts without verifying,
 * `verify-ca` checks the chain, `verify-full` also the host name. pg cannot "try TLS, then fall back", so
 * `prefer`/`allow` connect without TLS here (pg_dump, through libpq, may still use it).
 */
export function pgClientConfig(url: string): ClientConfig {
  const { env, password } = parsePgUrl(url);
  const config: ClientConfig = {
    host: env.PGHOST ?? 'localhost',
    port: Number(env.PGPORT ?? 5432),
    application_name: env.PGAPPNAME ?? 'pg-backup-bot',
    connectionTimeoutMillis: Number(env.PGCONNECT_TIMEOUT ?? 15) * 1000,
    // The snapshot connection idles for the whole dump; keepalives stop a NAT or firewall from dropping it.
    keepAlive: true,
  };
  if (env.PGUSER) config.user = env.PGUSER;
  if (env.PGDATABASE) config.database = env.PGDATABASE;
  if (password !== undefined) config.password = password;
  if (env.PGOPTIONS) config.options = env.PGOPTIONS;
  const mode = env.PGSSLMODE ?? 'prefer';
  if (mode === 'require' || mode === 'verify-ca' || mode === 'verify-full') {
    const read = (path: string | undefined) => (path ? readFileSync(path, 'utf8') : undefined);
    const ca = read(env.PGSSLROOTCERT);
    const cert = read(env.PGSSLCERT);
    const key = read(env.PGSSLKEY);
    config.ssl = {
      rejectUnauthorized: mode !== 'require',
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      ...(mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
    };
  } else {
    config.ssl = false;
  }
  return config;
}

/**
 * `client.connect()`, where a connection the server accepted and closed at once (a wrong port, a proxy or pgbouncer
 * with no database behind it) is said as a connection never made, not as one "lost during the backup" (QA): the
 * failure rules (failures.ts) read this wording.
 */
export async function connectClient(client: { connect(): Promise<unknown> }): Promise<void> {
  try {
    await client.connect();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/Connection terminated unexpectedly|server closed the connection unexpectedly|ECONNRESET/.test(message))
      throw new Error(`the server closed the connection before it was established (${message})`, { cause: err });
    throw err;
  }
}

/**
 * After a restore failed: does its server still answer? A disk that filled up can stop PostgreSQL itself (QA: a
 * replacement's copy filled the server's disk, the server crashed, and the verdict said only that the database was
 * not touched). Null when it answers, else why not, in one line; at most `timeoutMs`.
 */
export async function serverSilence(url: string, timeoutMs = 5000): Promise<string | null> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ ...pgClientConfig(url), connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return null;
  } catch (err) {
    return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'no answer';
  } finally {
    await client.end().catch(() => undefined);
  }
}
