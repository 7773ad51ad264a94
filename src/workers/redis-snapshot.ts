import { scanKeys, type RedisConnection } from '../redis-client.ts';
import type { Queues } from '../jobs/queues.ts';
import { outboxKey, pageStateKey } from '../notifications/escalation.ts';

/**
 * What a worker last saw in Redis, kept in memory, so that when Redis loses its data the bot can say what was
 * lost with it and put back what is still true outside Redis:
 * - open pages: PagerDuty still holds those alerts, so the "triggered" marks come back (or the next pass could
 *   never resolve them);
 * - events waiting in the PagerDuty outbox: re-queued (a trigger is idempotent per dedup key; a resolve of an
 *   alert that is no longer open is ignored by PagerDuty, and the health run that follows re-pages what still fails);
 * - running jobs: only reported. Their workers go on and post their own verdicts; BullMQ can no longer record them.
 */
export interface RedisSnapshot {
  at: Date;
  active: Array<{ queue: string; id: string; target: string | null }>;
  outbox: Array<{ dedupKey: string; events: string[] }>;
  paged: string[];
  /**
   * The run log's last runs (`<prefix>:last-run:<kind>:<target>`, DUMPed): a failed backup whose page stays open
   * must still read as failed in `/backup health` and `check` (QA: "no backup run recorded" beside the open page).
   */
  runs?: Array<{ key: string; dump: Buffer }>;
  /** INFO's run_id of the Redis server it was read from: a different one later means that server restarted. */
  runId: string | null;
}

/** The Redis server's run_id (new at every start) and uptime in whole seconds, from INFO. */
export async function serverRun(redis: RedisConnection): Promise<{ runId: string | null; uptime: number }> {
  const info = await redis.info('server').catch(() => '');
  return { runId: /run_id:(\w+)/.exec(info)?.[1] ?? null, uptime: Number(/uptime_in_seconds:(\d+)/.exec(info)?.[1] ?? Number.NaN) };
}

/** Redis glob patterns treat * ? [ ] \ specially; a configured prefix is matched literally. */
const literal = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');

export async function takeSnapshot(redis: RedisConnection, queues: Queues, prefix: string, at: Date): Promise<RedisSnapshot> {
  const running = await Promise.all(
    (['backup', 'restoreTest', 'restore'] as const).map(async (q) =>
      (await queues[q].getJobs(['active'])).map((j) => ({
        queue: queues[q].name,
        id: j.id ?? '?',
        target: (j.data as { target?: string } | undefined)?.target ?? null,
      })),
    ),
  );
  const statePrefix = pageStateKey(prefix, '');
  const outboxPrefix = outboxKey(prefix, '');
  const [stateKeys, outboxKeys] = await Promise.all([scanKeys(redis, `${literal(statePrefix)}*`), scanKeys(redis, `${literal(outboxPrefix)}*`)]);
  const states = stateKeys.length > 0 ? await redis.mget(...stateKeys) : [];
  const paged = stateKeys.filter((_, i) => states[i] === 'triggered').map((k) => k.slice(statePrefix.length));
  const outbox = await Promise.all(outboxKeys.map(async (k) => ({ dedupKey: k.slice(outboxPrefix.length), events: await redis.lrange(k, 0, -1) })));
  const runKeys = await scanKeys(redis, `${literal(prefix)}:last-run:*`);
  const runs = (await Promise.all(runKeys.map(async (k) => ({ key: k.slice(prefix.length), dump: await redis.dumpBuffer(k) })))).filter(
    (r): r is { key: string; dump: Buffer } => r.dump !== null,
  );
  const { runId } = await serverRun(redis);
  return { at, active: running.flat(), outbox: outbox.filter((o) => o.events.length > 0), paged, runs, runId };
}

/** Puts back the open-page marks and the waiting PagerDuty events of a snapshot. Returns how many of each. */
export async function restoreSnapshot(
  redis: RedisConnection,
  queues: Queues,
  prefix: string,
  snap: RedisSnapshot,
): Promise<{ paged: number; events: number; runs: number }> {
  let paged = 0;
  for (const key of snap.paged) {
    if ((await redis.set(pageStateKey(prefix, key), 'triggered', 'NX')) === 'OK') paged++;
  }
  let events = 0;
  for (const o of snap.outbox) {
    await redis.rpush(outboxKey(prefix, o.dedupKey), ...o.events);
    await queues.pagerduty.add('deliver', { dedupKey: o.dedupKey });
    events += o.events.length;
  }
  // The last runs, unless a newer one was recorded since (RESTORE without REPLACE leaves an existing key), or this
  // Redis cannot read the dump (another version after a failover): counted as put back only when they were.
  let runs = 0;
  for (const r of snap.runs ?? [])
    if (
      await redis.restore(`${prefix}${r.key}`, 0, r.dump).then(
        () => true,
        () => false,
      )
    )
      runs++;
  return { paged, events, runs };
}
