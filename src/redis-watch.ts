import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { withDeadline } from './deadline.ts';
import { formatDuration, formatTime } from './format.ts';
import type { Logger } from './logger.ts';
import { dedupKey } from './notifications/escalation.ts';
import type { PagerDutyClient, PagerEvent } from './notifications/pagerduty-client.ts';
import type { Notifier } from './notifications/types.ts';

/** How long Redis may not answer before the channel hears of it and PagerDuty is paged. */
export const REDIS_DOWN_AFTER_MS = 2 * 60_000;

/**
 * Redis not answering stops everything the bot does (schedules, backups, restore tests, health checks) and every
 * page, which goes through a Redis outbox: without this, an outage was silent in Slack and PagerDuty for as long as
 * it lasted (QA: 5½ minutes, only log lines and a 503 from /healthz). The Slack side asks Redis every `everyMs`;
 * once it has not answered for `downAfterMs`, it says so in the channel and pages PagerDuty directly (not through
 * the outbox, which is in Redis: one dedup key, `pg-backup-bot/_bot/redis`, so bots on several hosts make one
 * page), trying the page again each round until PagerDuty takes it; when Redis answers again, it says so and
 * resolves the page. A bot restarted meanwhile starts only once Redis answers, and would never resolve it (second
 * reader): the page is marked in `marker` (a file on this host) until resolved, and a start that finds it resolves it.
 */
export function watchRedis(o: {
  ping: () => Promise<unknown>;
  notifier: Pick<Notifier, 'post'>;
  pagerDuty: PagerDutyClient | null;
  log: Logger;
  everyMs?: number;
  downAfterMs?: number;
  /** A file that stands for the open page across restarts (redisPageMarker); none: in memory only. */
  marker?: string;
}): { stop(): void } {
  const everyMs = o.everyMs ?? 15_000;
  const downAfterMs = o.downAfterMs ?? REDIS_DOWN_AFTER_MS;
  const key = dedupKey('_bot', 'redis');
  let downSince: number | null = null;
  let said = false;
  let why = '';
  // The page's event still to be taken by PagerDuty (a trigger, or the resolve after it), sent again each round.
  let pending: PagerEvent | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const page = async () => {
    if (!pending || !o.pagerDuty) return;
    const sent = pending;
    const outcome = await o.pagerDuty.send(sent).catch((err: unknown) => ({ kind: 'retry' as const, reason: String(err) }));
    if (outcome.kind === 'retry') {
      o.log.warn({ dedupKey: key, reason: outcome.reason }, 'PagerDuty did not take the Redis page; trying again');
      return;
    }
    if (pending === sent) pending = null;
    if (o.marker && sent.action === 'resolve' && !said) await rm(o.marker, { force: true }).catch(() => undefined);
  };
  const event = (action: PagerEvent['action'], summary: string): PagerEvent => ({
    action,
    dedupKey: key,
    summary,
    severity: 'critical',
    source: hostname(),
    component: 'redis',
    timestamp: new Date().toISOString(),
  });
  const round = async () => {
    const answer = await withDeadline(3000, o.ping(), 'answering a ping').then(
      () => null,
      (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'no answer',
    );
    const now = Date.now();
    if (answer !== null) {
      downSince ??= now;
      why = answer;
      if (!said && now - downSince >= downAfterMs) {
        said = true;
        const text = `Redis has not answered since ${formatTime(new Date(downSince))} (${formatDuration(now - downSince)}): no schedule, backup, restore test or health check runs, and no other page goes out, until it is back. Check the Redis server (REDIS_URL); the bot's last error: ${why}`;
        o.log.error({ downSince: new Date(downSince).toISOString(), why }, 'Redis does not answer: said in the channel and paged');
        pending = event('trigger', `pg-backup-bot: Redis does not answer (${why})`);
        if (o.marker) await writeFile(o.marker, `${key}\n`).catch((err: unknown) => o.log.warn({ err }, 'could not mark the Redis page'));
        await o.notifier.post({ text: `:rotating_light: ${text}` }).catch((err: unknown) => o.log.warn({ err }, 'could not say that Redis is down'));
      }
    } else if (downSince !== null) {
      const lasted = formatDuration(now - downSince);
      if (said) {
        o.log.info({ lasted }, 'Redis answers again');
        pending = event('resolve', `pg-backup-bot: Redis answers again after ${lasted}`);
        await o.notifier
          .post({ text: `:white_check_mark: Redis answers again, after ${lasted} without: the schedules and queued work go on.` })
          .catch((err: unknown) => o.log.warn({ err }, 'could not say that Redis is back'));
      }
      downSince = null;
      said = false;
    }
    await page();
  };
  // A page an earlier process on this host left open (restarted during the outage): resolved now, Redis answering.
  if (o.marker && existsSync(o.marker)) pending = event('resolve', 'pg-backup-bot: Redis answers again (the bot started)');
  const loop = () => {
    if (stopped) return;
    timer = setTimeout(() => void round().finally(loop), everyMs);
    timer.unref?.();
  };
  loop();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Where a bot on this host marks its open Redis page: one file per Redis and prefix, in the temp directory. */
export const redisPageMarker = (redisUrl: string, prefix: string) =>
  join(tmpdir(), `pgbb-redis-paged-${createHash('sha256').update(`${redisUrl} ${prefix}`).digest('hex').slice(0, 16)}`);
