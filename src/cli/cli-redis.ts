import { createRedis, redisEndpoint, type RedisConnection } from '../redis-client.ts';

/**
 * Redis as the CLI uses it (`check`, `retention`): only when REDIS_URL is set — the bot's default, 127.0.0.1:6379,
 * could be any application's Redis — and then only to read the bot's queues and run log. ioredis alone: BullMQ (~0.15 s
 * more to load) comes in through cli-queues.ts, for the verbs that read queues (`check`, `retention`), not `backup`.
 */

/** How long the CLI waits for Redis to be ready, and for any one reply after (ms). */
export const CLI_REDIS_TIMEOUT_MS = 3000;

/**
 * One quick try, no retries, no queueing while it is down: null when it does not answer. Bounded end to end: a Redis
 * that accepts the connection and never replies (stopped, swapping, a dead proxy in front) is "does not answer"
 * within the timeout, not a CLI that waits forever, says nothing and ignores SIGTERM (QA: `kill -STOP` on redis-server
 * hung `backup`, `check`, `retention` and `scrub`). ioredis's connectTimeout covers the TCP connect only; the ready
 * check (INFO) and every later command have their own limit here.
 */
export async function connectRedis(url: string, cluster: boolean, timeoutMs = CLI_REDIS_TIMEOUT_MS): Promise<RedisConnection | null> {
  const redis = createRedis(redisEndpoint(url, cluster), {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), timeoutMs);
  });
  try {
    if ((await Promise.race([redis.connect().then(() => 'ready' as const), late])) === 'late') throw new Error('no answer');
    return redis;
  } catch {
    redis.disconnect();
    return null;
  } finally {
    clearTimeout(timer);
  }
}
