import { hostname } from 'node:os';
import { formatDuration, formatTime } from './format.ts';
import type { Logger } from './logger.ts';
import type { RedisConnection } from './redis-client.ts';
import type { WorkerPager } from './worker-pager.ts';

/**
 * Whether any worker process runs, seen from the bot. Backups, restore tests, health checks and the delivery of
 * pages all run in workers: with none running (a split deployment's worker host lost, its service given up on by
 * systemd, every worker crash-looping), the bot would answer Slack and say nothing else, ever. So each worker
 * process writes a beat into one Redis hash while its workers run, and each bot process reads it: no beat for
 * `missingMs` (5 minutes; counted from the bot's own start when it has seen none) pages `pg-backup-bot/_bot/workers`
 * (critical), delivered by the bot itself (worker-pager.ts), and tells the channel once (a marker key, so several
 * bot processes post one message). A beat again resolves the page and says which worker is back.
 * One hash in the prefix's slot: the same on Redis Cluster.
 */

export const BEAT_MS = 20_000;
/** A beat older than this is not a running worker (three beats missed). */
const FRESH_MS = 60_000;
/** Beats of workers gone for an hour are removed from the hash. */
const FORGET_MS = 60 * 60_000;

const beatsKey = (prefix: string) => `${prefix}:workers:beats`;
const missingKey = (prefix: string) => `${prefix}:workers:missing`;

/** Worker side: a beat (this host and pid → now) while `running()`, removed on stop. Redis errors are skipped. */
export function startPresence(o: { redis: RedisConnection; prefix: string; running: () => boolean; log: Logger; intervalMs?: number }): {
  stop(): Promise<void>;
} {
  const field = `${hostname()}:${process.pid}`;
  const beat = () => {
    if (!o.running()) return;
    o.redis.hset(beatsKey(o.prefix), field, String(Date.now())).catch((err: unknown) => o.log.debug({ err }, 'could not write the worker beat'));
  };
  beat();
  const timer = setInterval(beat, o.intervalMs ?? BEAT_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await o.redis.hdel(beatsKey(o.prefix), field).catch(() => undefined);
    },
  };
}

export interface WorkerWatchOptions {
  redis: RedisConnection;
  prefix: string;
  /** Its page; stopped (no more retries) with the watch. */
  pager: WorkerPager;
  /** Posts to the channel; a failure is logged by the caller's notifier, never thrown here. */
  announce: (text: string) => Promise<unknown>;
  log: Logger;
  now?: () => number;
  intervalMs?: number;
  missingMs?: number;
}

/** Bot side: reads the beats every `intervalMs` (30 s). */
export function watchWorkers(o: WorkerWatchOptions): { stop(): void; check(): Promise<void> } {
  const now = o.now ?? Date.now;
  const missingMs = o.missingMs ?? 5 * 60_000;
  const startedAt = now();
  let paged = false;
  const seen = { field: '', at: 0 };
  let checking: Promise<void> | null = null;
  const say = (text: string) => void o.announce(text).catch((err: unknown) => o.log.warn({ err }, 'could not post about the workers'));

  const check = async () => {
    let beats: Record<string, string>;
    try {
      beats = await o.redis.hgetall(beatsKey(o.prefix));
    } catch {
      return; // Redis unreachable: its own signals say so, and nothing can be known about the workers
    }
    const at = now();
    const stale = Object.entries(beats).filter(([, t]) => Number(t) < at - FORGET_MS);
    if (stale.length > 0) await o.redis.hdel(beatsKey(o.prefix), ...stale.map(([f]) => f)).catch(() => undefined);
    const running = Object.values(beats).some((t) => Number(t) >= at - FRESH_MS);
    // The newest beat, in Redis or remembered here (a worker that stopped gracefully removed its own): for the words.
    [seen.field, seen.at] = Object.entries(beats).reduce<[string, number]>(
      (best, [f, t]) => (Number(t) > best[1] ? [f, Number(t)] : best),
      [seen.field, seen.at],
    );
    const { field: newestField, at: newest } = seen;
    if (running) {
      paged = false;
      // Back: the marker says whether the channel heard of the absence (from this process or another, before a restart).
      if ((await o.redis.getdel(missingKey(o.prefix)).catch(() => null)) === null) return;
      const resolved = await o.pager.up(`pg-backup-bot: a worker process runs again (${newestField})`);
      say(`:white_check_mark: A worker process of pg-backup-bot runs again (${newestField}).${resolved ? ` ${resolved}.` : ''}`);
      return;
    }
    const since = Math.max(newest, startedAt);
    if (paged || at - since < missingMs) return;
    paged = true;
    const last =
      newest > 0
        ? `the last one, ${newestField}, was seen at ${formatTime(new Date(newest))}`
        : `none since this bot started at ${formatTime(new Date(startedAt))}`;
    const summary = `pg-backup-bot: no worker process has run for ${formatDuration(at - since)} (${last}): no backup, restore test, health check or page runs`;
    const sentence = await o.pager.down(summary, { lastSeen: newest > 0 ? new Date(newest).toISOString() : null, worker: newestField || null });
    const first = await o.redis.set(missingKey(o.prefix), String(at), 'NX').catch(() => 'OK');
    if (first !== 'OK') return;
    say(
      `:rotating_light: No worker process of pg-backup-bot has run for ${formatDuration(at - since)} (${last}). No backup, restore test, health check or page runs until one does: start one (\`pg-backup-bot worker\`, or \`npm start\`), or read its logs for why it stops. ${sentence}.`,
    );
  };

  const run = () => {
    checking ??= check()
      .catch((err: unknown) => o.log.warn({ err }, 'could not check for running workers'))
      .finally(() => {
        checking = null;
      });
    return checking;
  };
  const timer = setInterval(() => void run(), o.intervalMs ?? 30_000);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      o.pager.stop();
    },
    check: run,
  };
}
