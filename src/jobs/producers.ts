import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { BotError } from '../errors.ts';
import type { BackupJobData } from './queues.ts';

export interface Enqueued {
  jobId: string;
  /** True when a job for the same target was already waiting or running and no new one was created. */
  duplicate: boolean;
}

/** Slack allows 3 s to ack: a Redis that does not answer must fail fast, not hold the ack. */
export async function withDeadline<T>(ms: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new BotError('internal', `The job queue (Redis) did not answer within ${ms} ms while ${what}; nothing was started. Check REDIS_URL and that Redis is up.`)),
      ms,
    );
  });
  try {
    return await Promise.race([work, deadline]);
  } catch (err) {
    if (err instanceof BotError) throw err;
    throw new BotError('internal', `The job queue (Redis) is unreachable while ${what}; nothing was started. Check REDIS_URL and that Redis is up.`, {
      cause: err,
    });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One backup per target at a time: BullMQ deduplication keeps the key until the job finishes, and returns the
 * id of the job already there instead of creating a second one.
 */
export async function enqueueBackup(queue: Queue<BackupJobData>, data: BackupJobData): Promise<Enqueued> {
  const proposed = `backup-${data.target}-${randomUUID()}`;
  const job = await withDeadline(
    2000,
    queue.add('backup', data, { jobId: proposed, deduplication: { id: `backup-${data.target}` } }),
    'queueing the backup',
  );
  const jobId = job.id ?? proposed;
  return { jobId, duplicate: jobId !== proposed };
}
