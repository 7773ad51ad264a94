import type { Queue } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';
import type { PagerJobData } from '../jobs/queues.ts';
import type { PagerEvent, Severity } from './pagerduty-client.ts';

/** `pg-backup-bot/<target>/<condition>`: one PagerDuty alert per condition, stable across retries and restarts. */
export function dedupKey(target: string, condition: string): string {
  return `pg-backup-bot/${target}/${condition}`;
}

export interface Escalation {
  /**
   * Pages once while the condition stays failing; a later failure only updates the open alert (same dedup key) when its
   * severity rises or it is another episode of the condition (health's `episode`: another set of damaged backups, a
   * lower band of free disk), never for a summary's wording alone. Returns a sentence for the channel.
   */
  failed(
    target: string,
    condition: string,
    info: { summary: string; severity: Severity; details: Record<string, unknown>; episode?: string | undefined },
  ): Promise<string>;
  /** Resolves the page if this condition had paged. Returns a sentence for the channel, or null when nothing was open. */
  passed(target: string, condition: string, info: { summary: string; details?: Record<string, unknown> }): Promise<string | null>;
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2, critical: 3 };
function parseSaid(raw: string | null): { severity: Severity; episode: string | null } | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as { severity?: unknown; episode?: unknown };
    return typeof v.severity === 'string' && v.severity in RANK
      ? { severity: v.severity as Severity, episode: typeof v.episode === 'string' ? v.episode : null }
      : null;
  } catch {
    return null;
  }
}

export const NOT_CONFIGURED = 'PagerDuty escalation is not configured (PAGERDUTY_ROUTING_KEY is unset): nobody was paged';

/**
 * Events go into a per-dedup-key outbox list in Redis and a BullMQ job delivers the list head first, so a
 * resolve never overtakes its trigger and an outage of PagerDuty delays a page without losing it.
 */
export function createEscalation(deps: {
  redis: RedisConnection;
  queue: Queue<PagerJobData>;
  prefix: string;
  enabled: boolean;
  source: string;
  now?: () => Date;
}): Escalation {
  const now = deps.now ?? (() => new Date());
  const stateKey = (k: string) => pageStateKey(deps.prefix, k);

  async function enqueue(e: PagerEvent): Promise<void> {
    await deps.redis.rpush(outboxKey(deps.prefix, e.dedupKey), JSON.stringify(e));
    await deps.queue.add('deliver', { dedupKey: e.dedupKey });
  }

  return {
    async failed(target, condition, info) {
      if (!deps.enabled) return NOT_CONFIGURED;
      const key = dedupKey(target, condition);
      const previous = await deps.redis.set(stateKey(key), 'triggered', 'GET');
      const said = { severity: info.severity, episode: info.episode ?? null };
      if (previous === 'triggered') {
        // The open alert updated (the same dedup key: PagerDuty adds it to the incident, no new one) when the condition
        // grew worse or is another episode of it (QA: the page kept "1 backup damaged, its roles file only" while the
        // channel said two, one of them its database archive). A summary that only words the same failure anew (a
        // newer backup id, a figure) is not sent (second reader: an update every few hours reopens an incident a
        // person resolved by hand).
        const last = parseSaid(await deps.redis.get(`${stateKey(key)}:said`).catch(() => null));
        const worse = last !== null && RANK[info.severity] > RANK[last.severity];
        const other = last !== null && said.episode !== null && said.episode !== last.episode;
        if (!worse && !other) return `PagerDuty was already paged for this condition (${key}); not paging again`;
      }
      await deps.redis.set(`${stateKey(key)}:said`, JSON.stringify(said)).catch(() => undefined);
      await enqueue({
        action: 'trigger',
        dedupKey: key,
        summary: info.summary,
        severity: info.severity,
        source: deps.source,
        component: target,
        customDetails: info.details,
        timestamp: now().toISOString(),
      });
      return previous === 'triggered'
        ? `PagerDuty's open alert updated (${info.severity}, dedup key ${key})`
        : `PagerDuty page queued (${info.severity}, dedup key ${key})`;
    },
    async passed(target, condition, info) {
      if (!deps.enabled) return null;
      const key = dedupKey(target, condition);
      const previous = await deps.redis.getdel(stateKey(key));
      await deps.redis.del(`${stateKey(key)}:said`).catch(() => undefined);
      if (previous !== 'triggered') return null;
      await enqueue({
        action: 'resolve',
        dedupKey: key,
        summary: info.summary,
        severity: 'info',
        source: deps.source,
        component: target,
        ...(info.details ? { customDetails: info.details } : {}),
        timestamp: now().toISOString(),
      });
      return `PagerDuty page resolved (${key})`;
    },
  };
}

/** 'triggered' while PagerDuty holds an open alert for this dedup key (so a pass knows to resolve it). */
export function pageStateKey(prefix: string, key: string): string {
  return `${prefix}:pd:state:${key}`;
}

export function outboxKey(prefix: string, key: string): string {
  return `${prefix}:pd:outbox:${key}`;
}
