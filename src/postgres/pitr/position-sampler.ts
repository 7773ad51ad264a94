import pg from 'pg';
import { pgClientConfig } from '../connection.ts';
import { parseLsn } from './lsn.ts';

export interface ServerPosition {
  at: Date;
  /** The server's current WAL position: everything written and committed is at or below it. */
  current: bigint;
  /**
   * How far the receiver has flushed to the worker's disk, as it last told the server (the physical slot's
   * restart_lsn: pg_receivewal --synchronous reports each fsync at once). Null without the slot.
   */
  flushed: bigint | null;
}

/**
 * Asks the server where its WAL is, over the target's ordinary connection (the one the logical backups use):
 * `pg_current_wal_insert_lsn()` and the slot's flushed position in one query, which any role may run. The insert
 * position, not the write position (`pg_current_wal_lsn()`): with synchronous_commit=off a commit is visible before
 * its WAL is written, and a sample at the write position then claimed a segment held a commit it did not (QA). Not
 * IDENTIFY_SYSTEM on the replication connection: every sample would take one of the server's `max_wal_senders`,
 * and the replication role may have no `pg_hba.conf` line for ordinary connections. One connection, kept open and
 * opened again after a failure; the password reaches `pg` as a config object, never a log.
 */
export function positionSampler(url: string, slot: string, timeoutMs = 5000): { sample(): Promise<ServerPosition>; close(): Promise<void> } {
  let client: pg.Client | null = null;
  const drop = async () => {
    const c = client;
    client = null;
    await c?.end().catch(() => undefined);
  };
  return {
    async sample() {
      try {
        if (!client) {
          const c = new pg.Client({
            ...pgClientConfig(url),
            connectionTimeoutMillis: timeoutMs,
            query_timeout: timeoutMs,
            application_name: 'pg-backup-bot rpo',
          });
          c.on('error', () => void drop());
          client = c;
          await c.connect();
        }
        const at = new Date();
        const { rows } = await client.query<{ current: string; flushed: string | null }>(
          'SELECT pg_current_wal_insert_lsn()::text AS current, (SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1) AS flushed',
          [slot],
        );
        const row = rows[0] as { current: string; flushed: string | null };
        return { at, current: parseLsn(row.current), flushed: row.flushed ? parseLsn(row.flushed) : null };
      } catch (err) {
        await drop();
        throw err;
      }
    },
    close: drop,
  };
}
