import { createRedis, redisEndpoint, type RedisConnection } from '../redis-client.ts';

/**
 * Redis as the CLI uses it (`check`, `retention`): only when REDIS_URL is set — the bot's default, 127.0.0.1:6379,
 * could be any application's Redis — and then only to read the bot's queues and run log. ioredis alone: BullMQ (~0.15 s
 * more to load) comes in through cli-queues.ts, for the verbs that read queues (`check`, `retention`), not `backup`.
 */

/** One quick try, no retries, no queueing while it is down: null when it does not answer. */
export async function connectRedis(url: string, cluster: boolean): Promise<RedisConnection | null> {
  const redis = createRedis(redisEndpoint(url, cluster), {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 3000,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return redis;
  } catch {
    redis.disconnect();
    return null;
  }
}
