import { BotError } from './errors.ts';

/** What a deadline's message blames when the work does not answer: the job queue unless said otherwise. */
const DEADLINE_SOURCE = {
  redis: { name: 'The job queue (Redis)', check: 'Check REDIS_URL and that Redis is up.' },
  storage: { name: 'The backup storage', check: 'Check BACKUP_DIR (its disk or mount) or the bucket, and the logs.' },
  postgres: { name: 'The database server', check: 'Check that it is up and reachable from the bot.' },
} as const;

/**
 * Slack allows 3 s to ack: what does not answer must fail fast, not hold the ack. `source` names what was asked (the
 * job queue, the storage, a database server), so the message sends nobody after the wrong system.
 */
export async function withDeadline<T>(ms: number, work: Promise<T>, what: string, source: keyof typeof DEADLINE_SOURCE = 'redis'): Promise<T> {
  const { name, check } = DEADLINE_SOURCE[source];
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BotError('internal', `${name} did not answer within ${ms} ms while ${what}; nothing was started. ${check}`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } catch (err) {
    if (err instanceof BotError) throw err;
    const failed = source === 'redis' ? 'is unreachable' : 'failed';
    throw new BotError('internal', `${name} ${failed} while ${what}; nothing was started. ${check}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
