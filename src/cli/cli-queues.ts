import { Queue } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';

/** A queue to read: without skipMetasUpdate, BullMQ's Queue writes its `meta` hash as soon as it connects. */
export function readOnlyQueue<T>(name: string, redis: RedisConnection, prefix: string): Queue<T> {
  return new Queue<T>(name, { connection: redis, prefix, skipMetasUpdate: true });
}
