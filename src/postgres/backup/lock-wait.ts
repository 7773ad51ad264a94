import pg from 'pg';
import { formatDuration } from '../../format.ts';
import type { Logger } from '../../logger.ts';
import { connectClient, pgClientConfig } from '../connection.ts';

/**
 * A backup's session (pg_dump's, or the bot's counting in the snapshot) waiting for a lock another session holds:
 * a migration's ALTER TABLE, or a session left idle in a transaction after a LOCK. pg_dump gives up after its
 * --lock-wait-timeout (5 min by default); until then its progress stands still, and a time left computed from it
 * reads "about 378 h left". What is waited for and who holds it is what the on-call engineer needs to act.
 */
export interface LockWait {
  /** The table (`public."Audit Log"`), or the kind of lock when it is not a table's. */
  what: string;
  waitedMs: number;
  /** The first session holding it up (pg_blocking_pids), as far as this role may see it. */
  holder: {
    pid: number;
    user: string | null;
    app: string | null;
    state: string | null;
    /** How long its transaction (or else its statement) has run. */
    forMs: number | null;
    /**
     * The first words of its current or last statement (`LOCK TABLE`, `ALTER TABLE`): enough to know it, never its
     * values (a statement may hold data or a password, and this goes to Slack and PagerDuty). Null when this role may
     * not read it (pg_read_all_stats).
     */
    query: string | null;
  } | null;
}

/**
 * The sessions of the backup are this database's sessions with the bot's application_name (pg_dump gets the same
 * PGAPPNAME, connection.ts), other than the asking one; at most one backup of a target runs at a time.
 */
const QUERY = `
SELECT coalesce((SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE c.oid = l.relation), l.locktype) AS what,
       (extract(epoch FROM now() - w.state_change) * 1000)::bigint AS waited_ms,
       b.pid AS holder_pid, b.usename AS holder_user, nullif(b.application_name, '') AS holder_app, b.state AS holder_state,
       (extract(epoch FROM now() - coalesce(b.xact_start, b.query_start)) * 1000)::bigint AS holder_ms,
       substring(b.query FROM '^\\s*([A-Za-z_]+(\\s+[A-Za-z_]+)?)') AS holder_query
  FROM pg_stat_activity w
  JOIN pg_locks l ON l.pid = w.pid AND NOT l.granted
  -- The holder, not a session queued ahead that waits itself (an ALTER TABLE behind an idle transaction).
  LEFT JOIN LATERAL (SELECT a.pid FROM unnest(pg_blocking_pids(w.pid)) AS p JOIN pg_stat_activity a ON a.pid = p
                     ORDER BY a.wait_event_type IS NOT DISTINCT FROM 'Lock', a.xact_start LIMIT 1) bp ON true
  LEFT JOIN pg_stat_activity b ON b.pid = bp.pid
 WHERE w.datname = current_database() AND w.application_name = current_setting('application_name')
   AND w.pid <> pg_backend_pid() AND w.wait_event_type = 'Lock'
   -- This backup's: the snapshot session, or one that imported its snapshot (the same backend_xmin), not another
   -- session of the bot on this database (a restore's pg_restore waiting on this very dump).
   AND (w.pid = $1 OR w.backend_xmin = (SELECT backend_xmin FROM pg_stat_activity WHERE pid = $1))
 ORDER BY w.state_change
 LIMIT 1`;

type Row = {
  what: string;
  waited_ms: string;
  holder_pid: number | null;
  holder_user: string | null;
  holder_app: string | null;
  holder_state: string | null;
  holder_ms: string | null;
  holder_query: string | null;
};

/** Asked on a connection of its own: the snapshot's transaction would see pg_stat_activity as it was when it began. */
export async function findLockWait(url: string, snapshotPid: number): Promise<LockWait | null> {
  const client = new pg.Client({ ...pgClientConfig(url), connectionTimeoutMillis: 5000, statement_timeout: 5000, query_timeout: 10_000 });
  // A connection dropped between queries emits 'error': without a listener it would end the process.
  client.on('error', () => undefined);
  await connectClient(client);
  try {
    const row = (await client.query<Row>(QUERY, [snapshotPid])).rows[0];
    if (!row) return null;
    const hidden = row.holder_query === null || row.holder_query.startsWith('<insufficient privilege>');
    return {
      what: row.what,
      waitedMs: Number(row.waited_ms),
      holder:
        row.holder_pid === null
          ? null
          : {
              pid: row.holder_pid,
              user: row.holder_user,
              app: row.holder_app,
              state: row.holder_state,
              forMs: row.holder_ms === null ? null : Number(row.holder_ms),
              query: hidden ? null : row.holder_query,
            },
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Tenths of a second below 10 s, whole seconds above: rounded to whole seconds, a holder of 0.4 s read "for 0 ms" (CI). */
const waitTime = (ms: number) => (ms < 10_000 ? `${(Math.max(0, ms) / 1000).toFixed(1)} s` : formatDuration(Math.round(ms / 1000) * 1000));

/** "pid 4242 (user migrator, psql, idle in transaction for 12 min: LOCK TABLE …)" */
export function describeHolder(h: NonNullable<LockWait['holder']>): string {
  const who = [h.user ? `user ${h.user}` : null, h.app].filter(Boolean).join(', ');
  const state = h.state ? `${h.state}${h.forMs !== null ? ` for ${waitTime(h.forMs)}` : ''}` : null;
  const query = h.query ? `: ${h.query} …` : '';
  const inner = [who, state].filter(Boolean).join(', ');
  return `pid ${h.pid}${inner || query ? ` (${inner}${query})` : ''}`;
}

/** A wait's lock and holder as phrases: "on public.orders" (or "of type advisory"), ", held by pid 4242 (…)". */
export function lockParts(w: LockWait): { on: string; held: string } {
  // pg_locks' locktype when the lock is not a table's: relation ids always come back as a name.
  const table = !/^(relation|extend|frozenid|page|tuple|transactionid|virtualxid|spectoken|object|userlock|advisory)$/.test(w.what);
  return { on: table ? `on ${w.what}` : `of type ${w.what}`, held: w.holder ? `, held by ${describeHolder(w.holder)}` : '' };
}

/** "waiting 40 s for a lock on public.orders, held by pid 4242 (…)" */
export function describeLockWait(w: LockWait): string {
  const { on, held } = lockParts(w);
  return `waiting ${waitTime(w.waitedMs)} for a lock ${on}${held}`;
}

/**
 * Watches a running backup for lock waits: every `everyMs`, when its progress has not moved since the last look,
 * asks the server (findLockWait). A progress report made while a wait is known carries it (`waiting`); the wait is
 * forgotten once the bytes move or the phase changes. `last()` is the last wait seen, for the verdict when pg_dump
 * gives up. Asking fails quietly (a debug line): the hint is a help, never a reason to fail a backup.
 */
export function watchLockWaits<P extends { phase: string; rawBytes?: number; waiting?: string }>(o: {
  url: string;
  /** The snapshot session's pid, once it is open (null before): whose waits are this backup's. */
  snapshotPid: () => number | null;
  everyMs: number;
  emit: (p: P) => void;
  log: Logger;
}) {
  let current: P | null = null;
  let moved = true;
  let waiting: LockWait | null = null;
  let seen: LockWait | null = null;
  let asking = false;
  let stopped = false;
  const timer = setInterval(() => {
    const still = current;
    const pid = o.snapshotPid();
    if (!still || pid === null || asking || stopped || !/^(counting|dumping)$/.test(still.phase)) return;
    if (moved) {
      moved = false;
      return;
    }
    asking = true;
    findLockWait(o.url, pid)
      .then((w) => {
        // An answer about a moment since passed (the dump moved, or ended) says nothing about now.
        if (current !== still || stopped) return;
        waiting = w;
        // A look that finds no wait keeps the last one seen: it may land just after pg_dump (or the counting) gave up
        // on that very wait, when the verdict still needs it. Only the dump moving forgets it.
        if (w) seen = w;
        if (w) o.emit({ ...still, waiting: describeLockWait(w) });
      })
      .catch((err: unknown) => o.log.debug({ err }, 'could not ask the server about lock waits'))
      .finally(() => {
        asking = false;
      });
  }, o.everyMs);
  timer.unref();
  return {
    progress(p: P) {
      if (!current || p.phase !== current.phase || p.rawBytes !== current.rawBytes) {
        // Moving again: that wait is over, and a later give-up is another wait's (the next look finds it).
        moved = true;
        waiting = null;
        seen = null;
      }
      current = p;
      o.emit(waiting ? { ...p, waiting: describeLockWait(waiting) } : p);
    },
    last: () => seen,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
