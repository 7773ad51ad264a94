import { Cluster, Redis } from 'ioredis';

/**
 * The bot's Redis: one server, or a Redis Cluster. REDIS_URL names one server, or lists seed nodes of a cluster
 * separated by commas; REDIS_CLUSTER=true makes a single URL a cluster seed too. On a cluster every key of the bot
 * (BullMQ's and ours) starts with the queue prefix, whose hash tag (`{pgbb}`) puts them all in one slot: multi-key
 * scripts and transactions work as on one server (config-env.ts refuses a prefix without one in cluster mode).
 */
export type RedisConnection = Redis | Cluster;

export interface RedisEndpoint {
  urls: string[];
  cluster: boolean;
}

export function redisEndpoint(redisUrl: string, cluster = false): RedisEndpoint {
  const urls = redisUrl
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  return { urls, cluster: cluster || urls.length > 1 };
}

/** The connection options the bot sets. On a cluster they apply to every node's connection, `retryStrategy` to the cluster's. */
export interface ConnectOptions {
  enableOfflineQueue?: boolean;
  lazyConnect?: boolean;
  maxRetriesPerRequest?: number | null;
  connectTimeout?: number;
  /** A command without a reply by then fails (the CLI: a Redis that accepts and never answers). */
  commandTimeout?: number;
  /** The delay before the next reconnect attempt; null gives up (the CLI's single try). */
  retryStrategy?: (times: number) => number | null;
}

export function createRedis(endpoint: RedisEndpoint, options: ConnectOptions): RedisConnection {
  const [first = 'redis://127.0.0.1:6379'] = endpoint.urls;
  if (!endpoint.cluster) return new Redis(first, options);
  const seed = new URL(first);
  const nodes = endpoint.urls.map((u) => {
    const url = new URL(u);
    return { host: url.hostname, port: Number(url.port || 6379) };
  });
  const { enableOfflineQueue, lazyConnect, retryStrategy, ...perNode } = options;
  return new Cluster(nodes, {
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
    ...(retryStrategy ? { clusterRetryStrategy: retryStrategy } : {}),
    redisOptions: {
      ...perNode,
      // Credentials and TLS from the first seed's URL, as for one server (a cluster has one set for all its nodes).
      ...(seed.username ? { username: decodeURIComponent(seed.username) } : {}),
      ...(seed.password ? { password: decodeURIComponent(seed.password) } : {}),
      ...(seed.protocol === 'rediss:' ? { tls: {} } : {}),
    },
  });
}

/** A second connection like `redis` with other per-node options (QueueEvents wants its own, blocking one). */
export function duplicateRedis(redis: RedisConnection, options: Pick<ConnectOptions, 'maxRetriesPerRequest'>): RedisConnection {
  if (redis instanceof Cluster) {
    // Cluster#duplicate merges its options shallowly, so the node options are merged here. ioredis types them and
    // duplicate()'s parameter differently (`replyMapping` under exactOptionalPropertyTypes): the same object.
    const redisOptions = { ...redis.options.redisOptions, ...options };
    return redis.duplicate(undefined, { redisOptions } as Parameters<Cluster['duplicate']>[1]);
  }
  return redis.duplicate(options);
}

/** Every key matching `pattern`: SCAN on each primary of a cluster (a cluster's SCAN reaches one node only). */
export async function scanKeys(redis: RedisConnection, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

/** Redis's own clock in ms (TIME): the one every host shares, where hosts' clocks may disagree by minutes. */
export async function redisNow(redis: Pick<RedisConnection, 'time'>): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
