import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { type RedisConnection, redisNow } from '../redis-client.ts';
import { plannedSchedulers } from '../schedules/sync.ts';

/**
 * Two deployments with different plans on one Redis and one QUEUE_PREFIX (QA: two installs left at the default
 * prefix) remove each other's schedulers: each one's plan keeper puts its own back within 30 s and removes the
 * other's, so a scheduled backup runs only if its scheduler happens to be there when it is due, and each worker takes
 * the other's jobs. Said only in the logs until this. Each plan keeper writes its plan's fingerprint at every check
 * (`<prefix>:plan:fingerprints`, field = fingerprint, value = host, targets, when); a fingerprint not ours, written
 * within the last two minutes and seen for five (a rolling deploy that changes the config passes in less), is a
 * rival: said once a day in the channel and logged as an error.
 */

export interface Rival {
  fingerprint: string;
  host: string;
  targets: string[];
}

const FRESH_MS = 2 * 60_000;
export const RIVAL_AFTER_MS = 5 * 60_000;

/**
 * The plan's fingerprint: every scheduler whole (id, pattern, zone, job name and data: what sync.ts compares before
 * it re-upserts one; two plans alike in their crons but not their keepDays rewrite each other too), and the targets.
 */
export function planFingerprint(config: Pick<Config, 'targets' | 'timezone' | 'schedules'>): string {
  const plan = plannedSchedulers(config)
    .map((p) => JSON.stringify(p))
    .sort();
  const targets = config.targets.map((t) => t.name).sort();
  return createHash('sha256').update(JSON.stringify({ plan, targets })).digest('hex').slice(0, 16);
}

/** Tracks other plans seen in Redis; `seen` returns those seen for RIVAL_AFTER_MS and still fresh. */
export function rivalWatch(deps: {
  redis: RedisConnection;
  config: Config;
  log: Logger;
  /** Milliseconds by one clock for every host: Redis's own (TIME), so a host whose clock is behind is no rival unseen. */
  clock?: () => Promise<number>;
}) {
  const clock = deps.clock ?? (async () => redisNow(deps.redis));
  const key = `${deps.config.queuePrefix}:plan:fingerprints`;
  const own = planFingerprint(deps.config);
  const firstSeen = new Map<string, number>();
  const seen = async (): Promise<Rival[]> => {
    const at = await clock();
    const targets = deps.config.targets.map((t) => t.name);
    await deps.redis.hset(key, own, JSON.stringify({ host: hostname(), targets, at }));
    const all = await deps.redis.hgetall(key);
    const rivals: Rival[] = [];
    for (const [fingerprint, raw] of Object.entries(all)) {
      if (fingerprint === own) continue;
      const v = parse(raw);
      if (!v || at - v.at > FRESH_MS) {
        firstSeen.delete(fingerprint);
        // Long gone (a deploy replaced, a config changed): tidied, so the hash does not grow.
        if (!v || at - v.at > 24 * 3_600_000) await deps.redis.hdel(key, fingerprint);
        continue;
      }
      const first = firstSeen.get(fingerprint) ?? at;
      firstSeen.set(fingerprint, first);
      if (at - first >= RIVAL_AFTER_MS) rivals.push({ fingerprint, host: v.host, targets: v.targets });
    }
    return rivals;
  };
  /** Each rival said once a day across every process of both deployments (NX), and logged here each time. */
  return async function sayRivals(say: (text: string) => Promise<unknown | undefined>): Promise<Rival[]> {
    const rivals = await seen();
    for (const r of rivals) {
      deps.log.error({ rival: r }, 'another deployment with a different plan shares this Redis and QUEUE_PREFIX');
      const pair = [own, r.fingerprint].sort().join(':');
      const saidKey = `${deps.config.queuePrefix}:plan:rival-said:${pair}`;
      const first = await deps.redis.set(saidKey, '1', 'EX', 86_400, 'NX');
      // Not posted (Slack down): the next check, of this process or another, tries again.
      if (first === 'OK' && (await say(rivalSentence(deps.config, r))) === undefined) await deps.redis.del(saidKey);
    }
    return rivals;
  };
}

function parse(raw: string): { host: string; targets: string[]; at: number } | null {
  try {
    const v = JSON.parse(raw) as { host?: unknown; targets?: unknown; at?: unknown };
    if (typeof v.host !== 'string' || !Array.isArray(v.targets) || typeof v.at !== 'number') return null;
    return { host: v.host, targets: v.targets.map(String), at: v.at };
  } catch {
    return null;
  }
}

/** The channel's sentence for a rival deployment. */
export function rivalSentence(config: Pick<Config, 'queuePrefix' | 'targets'>, r: Rival): string {
  const ours = config.targets.map((t) => t.name).join(', ') || 'none';
  return (
    `:rotating_light: Another pg-backup-bot deployment with a different plan shares this Redis and QUEUE_PREFIX \`${config.queuePrefix}\`: ` +
    `host ${r.host} (targets: ${r.targets.join(', ') || 'none'}), beside this one on ${hostname()} (targets: ${ours}), for over 5 minutes. ` +
    'Each removes the schedules the other planned and takes its jobs, so scheduled backups may not run. Give each deployment its own QUEUE_PREFIX (or its own Redis), or the same config file. ' +
    '(A rollout of a changed config that has not reached every worker yet looks the same: it ends when every worker runs the new config.)'
  );
}
