import pg from 'pg';
import { pgClientConfig } from './connection.ts';

/**
 * The server's clock, read by SQL: what recovery targets are judged by (a commit's timestamp is the server's), so what
 * the bot stamps for point-in-time recovery is read here rather than from the worker's clock, which may run behind or
 * ahead of it by whatever NTP left.
 *
 * As microseconds since the epoch in text, not a timestamptz: node-pg cannot parse one under a DateStyle other than
 * ISO (a role's or a pooler's setting).
 */
export const SERVER_CLOCK_US = '(extract(epoch FROM clock_timestamp()) * 1000000)::int8::text';

/** Cut to the millisecond: earlier, never later, than the server's time. */
export const fromServerMicros = (us: string): Date => new Date(Math.floor(Number(us) / 1000));

/**
 * The server's time now, over the target's ordinary connection (one short-lived connection; the password reaches
 * `pg` as a config object, never a log). Rejects when the server cannot be asked in `timeoutMs`.
 */
export async function readServerClock(url: string, timeoutMs = 5000): Promise<Date> {
  const client = new pg.Client({
    ...pgClientConfig(url),
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    application_name: 'pg-backup-bot clock',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ at_us: string }>(`SELECT ${SERVER_CLOCK_US} AS at_us`);
    return fromServerMicros((rows[0] as { at_us: string }).at_us);
  } finally {
    // Not awaited: a graceful close can wait on a network gone after the answer for as long as TCP takes.
    void client.end().catch(() => undefined);
  }
}

/**
 * A clock for stamps that must never be earlier than the server's time (a base backup's start and finish): each
 * reading asks the server. When one cannot, the worker's clock plus the difference the first reading measured, taken
 * at its upper bound (the server's time minus the worker's when the query was sent), so the stamp is never earlier
 * than the server's; without a first reading, the worker's clock for every stamp, so a start and a finish never mix
 * the two clocks. `onFallback` hears each time the server could not be asked.
 */
export function serverStampClock(url: string, workerNow: () => Date, onFallback?: (why: string) => void, timeoutMs = 5000): () => Promise<Date> {
  // undefined: not asked yet; null: the first reading failed (the worker's clock from then on).
  let offsetMs: number | null | undefined;
  return async () => {
    if (offsetMs === null) return workerNow();
    const sent = workerNow().getTime();
    try {
      const at = await readServerClock(url, timeoutMs);
      offsetMs ??= at.getTime() - sent;
      return at;
    } catch (err) {
      onFallback?.(err instanceof Error ? err.message : String(err));
      if (offsetMs === undefined) {
        offsetMs = null;
        return workerNow();
      }
      return new Date(workerNow().getTime() + offsetMs);
    }
  };
}
