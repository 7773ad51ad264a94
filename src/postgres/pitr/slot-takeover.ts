import pg from 'pg';
import { pgClientConfig } from '../connection.ts';

/**
 * Frees the target's replication slot for the worker that has just taken the WAL lease. The previous holder is gone
 * (its lease expired) or has stopped, but the server may still count its connection as the slot's user: a killed
 * worker's walsender stays until `wal_sender_timeout` (60 s by default) notices, and a killed worker's orphaned
 * pg_receivewal keeps streaming for as long as it lives. Either holds the slot "active", and a new pg_receivewal is
 * refused. So the new holder ends the slot's walsender: `pg_terminate_backend` is allowed to a role on its own
 * sessions, and the walsender runs as the replication role itself, so no superuser is needed — only a plain
 * connection as that role (a pg_hba line for its database, beside the `replication` one). Without one, or when
 * the server refuses, this says why and the receiver's own backoff waits out wal_sender_timeout instead.
 *
 * Only the lease holder calls this: the lease is what makes ending the other connection safe.
 */
export async function freeSlot(url: string, slot: string, waitMs = 10_000): Promise<{ ended: number | null; problem: string | null }> {
  const client = new pg.Client({ ...pgClientConfig(url), connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const active = async () =>
      (await client.query<{ pid: number | null }>('SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]?.pid ?? null;
    const pid = await active();
    if (pid === null) return { ended: null, problem: null };
    const { rows } = await client.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
    if (!rows[0]?.ok) return { ended: null, problem: `the server did not end PID ${pid}, which holds slot ${slot}` };
    // pg_terminate_backend signals; the slot is free once that walsender has exited.
    const end = Date.now() + waitMs;
    while ((await active()) !== null) {
      if (Date.now() > end) return { ended: pid, problem: `PID ${pid} still holds slot ${slot} ${waitMs / 1000} s after it was told to end` };
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ended: pid, problem: null };
  } catch (err) {
    const said = err instanceof Error ? err.message : String(err);
    return { ended: null, problem: `could not end the slot's previous receiver (${said}); waiting for wal_sender_timeout instead` };
  } finally {
    await client.end().catch(() => undefined);
  }
}
