import { Queue } from 'bullmq';
import { QUEUE, type BackupJobData, type RestoreJobData, type RestoreTestJobData } from '../jobs/queues.ts';
import type { RedisConnection } from '../redis-client.ts';

/** A queue to read: without skipMetasUpdate, BullMQ's Queue writes its `meta` hash as soon as it connects. */
export function readOnlyQueue<T>(name: string, redis: RedisConnection, prefix: string): Queue<T> {
  return new Queue<T>(name, { connection: redis, prefix, skipMetasUpdate: true });
}

/** The queues that say which backups are in use (jobs/backups-in-use.ts), read only; `close` ends them. */
export function inUseQueues(redis: RedisConnection, prefix: string) {
  const queues = {
    backup: readOnlyQueue<BackupJobData>(QUEUE.backup, redis, prefix),
    restoreTest: readOnlyQueue<RestoreTestJobData>(QUEUE.restoreTest, redis, prefix),
    restore: readOnlyQueue<RestoreJobData>(QUEUE.restore, redis, prefix),
  };
  return { ...queues, close: () => Promise.allSettled(Object.values(queues).map((q) => q.close())) };
}
