import pg from 'pg';
import { connectClient, pgClientConfig } from '../connection.ts';

/** Facts about the server and database, read inside the snapshot. */
export interface DatabaseInfo {
  name: string;
  serverVersion: string;
  serverVersionNum: number;
  sizeBytes: number;
  superuser: boolean;
}

/**
 * An open REPEATABLE READ transaction whose snapshot is exported: pg_dump runs in it (`--snapshot`) and the
 * counts are taken in it, so they describe exactly what was dumped. The exported snapshot exists only while
 * this transaction is open, so `close()` must wait until pg_dump has finished.
 */
export interface Snapshot {
  client: pg.Client;
  snapshotId: string;
  /** The snapshot session's backend pid: the sessions that imported its snapshot share its backend_xmin (lock-wait.ts). */
  pid: number;
  info: DatabaseInfo;
  close(): Promise<void>;
}

/** `lockTimeoutMs`: counting waits no longer than pg_dump would for a table lock (an ALTER TABLE in progress). */
export async function openSnapshot(url: string, options: { lockTimeoutMs?: number } = {}): Promise<Snapshot> {
  const client = new pg.Client(pgClientConfig(url));
  // A dropped connection emits 'error' on the client; without a listener Node would crash the whole bot.
  let lost: Error | undefined;
  client.on('error', (err) => {
    lost = err;
  });
  try {
    await connectClient(client);
    // A server-wide idle_in_transaction_session_timeout or statement_timeout would kill the snapshot or the
    // counts halfway through a long dump. The counts run beside pg_dump: parallel workers would only take CPU from
    // it (and each count(*) would start its own), so they scan on this one backend.
    const lockTimeout = Math.max(0, Math.round(options.lockTimeoutMs ?? 0));
    await client.query(
      `SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0; SET lock_timeout = ${lockTimeout}; SET max_parallel_workers_per_gather = 0`,
    );
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const { rows } = await client.query<{ snapshot: string }>('SELECT pg_export_snapshot() AS snapshot');
    const { rows: info } = await client.query<{
      name: string;
      version: string;
      version_num: string;
      size: string;
      superuser: boolean;
      pid: number;
    }>(`SELECT pg_backend_pid() AS pid, current_database() AS name, current_setting('server_version') AS version,
              current_setting('server_version_num') AS version_num,
              pg_database_size(current_database())::text AS size,
              (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser`);
    const snapshotId = rows[0]?.snapshot;
    const i = info[0];
    if (!snapshotId || !i) throw new Error('the server returned no snapshot id');
    let closed = false;
    return {
      client,
      snapshotId,
      pid: i.pid,
      info: {
        name: i.name,
        serverVersion: i.version,
        serverVersionNum: Number(i.version_num),
        sizeBytes: Number(i.size),
        superuser: i.superuser === true,
      },
      async close() {
        if (closed) return;
        closed = true;
        // Read only: nothing to commit. A lost connection has already ended the transaction.
        if (!lost) await client.query('ROLLBACK').catch(() => undefined);
        await client.end().catch(() => undefined);
      },
    };
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

/** `server_version_num` 150020 → 15; 90624 → 9 (for 9.x the "major" was 9.6, but any pg_dump ≥ 10 reads it). */
export function serverMajor(versionNum: number): number {
  return Math.floor(versionNum / 10000);
}
