import pg from 'pg';
import { pgClientConfig } from '../connection.ts';

/** The archive's replication slot on the source server, as pg_replication_slots shows it. */
export interface SlotReading {
  exists: boolean;
  /** A receiver is connected to it now. */
  active: boolean;
  /** reserved | extended | unreserved | lost (PostgreSQL 13+); null before 13. */
  walStatus: string | null;
  /** Bytes of WAL the server keeps for the slot: from its restart_lsn to the server's current position. */
  retainedBytes: number | null;
  /** Bytes the server may still write before the slot's WAL is given up (max_slot_wal_keep_size set); else null. */
  safeWalSize: number | null;
  /** max_slot_wal_keep_size in MB: -1 is unlimited; null where the setting does not exist (before 13). */
  keepSizeMb: number | null;
}

// to_jsonb(s) reads wal_status and safe_wal_size where they exist (13+) without failing on older servers; on a
// standby the current position is the replayed one.
const QUERY = `
SELECT s.slot_name IS NOT NULL AS exists,
       coalesce(s.active, false) AS active,
       to_jsonb(s) ->> 'wal_status' AS wal_status,
       (to_jsonb(s) ->> 'safe_wal_size')::bigint AS safe_wal_size,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, s.restart_lsn)::bigint AS retained,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'max_slot_wal_keep_size') AS keep_mb
FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = $1`;

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/**
 * Reads the slot through the target's normal connection (pg_replication_slots and pg_settings are readable by any
 * role), within `timeoutMs`: a health check must not hang on an unreachable server.
 */
export async function readSlot(url: string, slot: string, timeoutMs = 2000): Promise<SlotReading> {
  const client = new pg.Client({ ...pgClientConfig(url), connectionTimeoutMillis: timeoutMs, statement_timeout: timeoutMs, query_timeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query(QUERY, [slot]);
    const r = rows[0] as Record<string, unknown>;
    return {
      exists: r.exists === true,
      active: r.active === true,
      walStatus: typeof r.wal_status === 'string' ? r.wal_status : null,
      retainedBytes: num(r.retained),
      safeWalSize: num(r.safe_wal_size),
      keepSizeMb: num(r.keep_mb),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}
