import pg from 'pg';
import { pgClientConfig } from '../connection.ts';
import { fromServerMicros, SERVER_CLOCK_US } from '../server-clock.ts';
import { parseLsn } from './lsn.ts';

export interface ServerPosition {
  /**
   * When, by the server's clock (clock_timestamp(), read before the position): recovery stops by the server's commit
   * timestamps, so a window's end read from a worker clock ahead of it claimed commits the archive did not hold (QA).
   */
  at: Date;
  /** When, by the worker's clock (the query sent): what the RPO and a stalled receiver are measured by, against the worker's "now". */
  seenAt: Date;
  /** The server's clock minus the worker's (at the query's midpoint), in ms: off by at most half its round trip. */
  clockSkewMs: number;
  /** The server's current WAL position: everything written and committed is at or below it. */
  current: bigint;
  /** The timeline it writes (its current WAL file's): positions go on across a promotion, timelines tell them apart. */
  timeline: number;
  /**
   * How far the receiver has flushed to the worker's disk, as it last told the server (the physical slot's
   * restart_lsn: pg_receivewal --synchronous reports each fsync at once). Null without the slot.
   */
  flushed: bigint | null;
}

type Row = { at_us: string; current: string; walfile: string; flushed: string | null; block: string; segment: string };

// clock_timestamp() first: the target list is evaluated in order, so the position is read after that time.
const QUERY = `SELECT ${SERVER_CLOCK_US} AS at_us, pg_current_wal_insert_lsn()::text AS current,
       pg_walfile_name(pg_current_wal_insert_lsn()) AS walfile,
       (SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1) AS flushed,
       current_setting('wal_block_size') AS block,
       (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'kB' THEN 1024 WHEN 'MB' THEN 1048576 ELSE 1 END
          FROM pg_settings WHERE name = 'wal_segment_size') AS segment`;

/**
 * The insert position as the end of the last record: at a page's start PostgreSQL's insert position points past the
 * page header (24 bytes; 40 at a segment's start), where no record ends. An idle server after a switch then read
 * `0/3000028` while everything it had written ended at `0/3000000`: never caught up (second reading).
 */
export function recordEnd(insert: bigint, block: number, segment: number): bigint {
  if (segment > 0 && insert % BigInt(segment) === 40n) return insert - 40n;
  if (block > 0 && insert % BigInt(block) === 24n) return insert - 24n;
  return insert;
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
        const sent = Date.now();
        const { rows } = await client.query<Row>(QUERY, [slot]);
        const row = rows[0] as Row;
        const at = fromServerMicros(row.at_us);
        return {
          at,
          seenAt: new Date(sent),
          clockSkewMs: at.getTime() - (sent + Date.now()) / 2,
          current: recordEnd(parseLsn(row.current), Number(row.block), Number(row.segment)),
          timeline: Number.parseInt(row.walfile.slice(0, 8), 16),
          flushed: row.flushed ? parseLsn(row.flushed) : null,
        };
      } catch (err) {
        await drop();
        throw err;
      }
    },
    close: drop,
  };
}
