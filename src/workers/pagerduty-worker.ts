import { UnrecoverableError, type Job } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';
import { PagerJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { outboxKey, pageStateKey } from '../notifications/escalation.ts';
import type { PagerDutyClient, PagerEvent } from '../notifications/pagerduty-client.ts';
import { pagerLateMessage, pagerRefusedMessage } from '../notifications/pager-refused.ts';
import type { Notifier } from '../notifications/types.ts';
import { quietNotifier } from './quiet-notifier.ts';

// Pops the head only if it is still the event we sent: a concurrent delivery of the same key cannot drop an unsent event.
const POP_IF_HEAD = `if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then return redis.call('LPOP', KEYS[1]) end return false`;

/** Backoff for PagerDuty retries: exponential from 2 s, capped at 5 minutes, for as long as attempts last (days). */
export function cappedBackoff(attemptsMade: number): number {
  return Math.min(2000 * 2 ** Math.max(0, attemptsMade - 1), 5 * 60_000);
}

/** Delivers one dedup key's outbox, oldest first. Throws (so BullMQ retries with backoff) while PagerDuty is unavailable. */
export function pagerDutyProcessor(deps: { redis: RedisConnection; prefix: string; client: PagerDutyClient | null; notifier: Notifier; log: Logger }) {
  return async (job: Job<PagerJobData>): Promise<{ delivered: number }> => {
    // Checked at the door like every job's data (job-door.ts); no page can say that a page job is broken.
    const parsed = PagerJobData.safeParse(job.data);
    if (!parsed.success) {
      deps.log.error({ jobId: job.id, data: job.data }, 'PagerDuty delivery job data does not fit its schema; not run');
      throw new UnrecoverableError(`The pagerduty job ${job.id ?? '?'} was not run: its data does not fit this version of pg-backup-bot.`);
    }
    if (!deps.client) throw new UnrecoverableError('PagerDuty is not configured');
    const log = deps.log.child({ jobId: job.id, dedupKey: parsed.data.dedupKey, attempt: job.attemptsMade + 1 });
    return deliverOutbox({ ...deps, client: deps.client, log }, parsed.data.dedupKey);
  };
}

export type OutboxDeps = { redis: RedisConnection; prefix: string; client: PagerDutyClient; notifier: Notifier; log: Logger };

/**
 * Sends one dedup key's outbox, head first, each event popped once PagerDuty has answered for it. Throws while
 * PagerDuty is unavailable (the event stays at the head). The pagerduty queue's jobs run it; so does the bot itself
 * for the one page it raises while no worker runs (worker-pager.ts). Two deliveries of one key at once may send its
 * head twice, which PagerDuty folds into one alert by its dedup key; neither drops an unsent event.
 */
export async function deliverOutbox(deps: OutboxDeps, dedupKey: string): Promise<{ delivered: number }> {
  const { log } = deps;
  const key = outboxKey(deps.prefix, dedupKey);
  let delivered = 0;
  for (;;) {
    const head = await deps.redis.lindex(key, 0);
    if (head === null) return { delivered };
    const event = JSON.parse(head) as PagerEvent;
    const outcome = await deps.client.send(event);
    if (outcome.kind === 'retry') {
      log.warn({ reason: outcome.reason, action: event.action }, 'PagerDuty delivery postponed; will retry');
      await sayLate(deps, event, outcome.reason);
      throw new Error(outcome.reason);
    }
    if (outcome.kind === 'rejected') {
      // Retrying cannot heal a 400: say so where people look and move on, so later events for this key still go out.
      log.error({ status: outcome.status, message: outcome.message, action: event.action }, 'PagerDuty rejected an event');
      // No page is open: a later pass must not claim to resolve one, and the next failure must page again. Unless a
      // later trigger of this key waits behind it (the condition cleared and failed again meanwhile): that one's.
      if (event.action === 'trigger' && !(await triggerWaiting(deps.redis, key))) await deps.redis.del(pageStateKey(deps.prefix, event.dedupKey));
      await quietNotifier(deps.notifier, log).post(pagerRefusedMessage(event, outcome.status, outcome.message));
    } else {
      log.info({ action: event.action }, 'PagerDuty event delivered');
      // Said late: said taken too, so nobody goes on waiting for a page that has come.
      if (event.action === 'trigger' && (await deps.redis.del(lateKey(deps.prefix, event))) > 0)
        await quietNotifier(deps.notifier, log).post(pagerLateMessage(event, null, Date.now()));
    }
    await deps.redis.eval(POP_IF_HEAD, 1, key, head);
    delivered++;
  }
}

/** Whether a trigger waits in the outbox behind its head. */
async function triggerWaiting(redis: RedisConnection, key: string): Promise<boolean> {
  return (await redis.lrange(key, 1, -1)).some((raw) => (JSON.parse(raw) as PagerEvent).action === 'trigger');
}

/**
 * How long a page may wait for PagerDuty before the channel hears that nobody has been paged yet: said at the first
 * failed retry past it. The retries back off 2 s, 4 s, … 256 s: with 5 minutes here the first one past it was at 8 min
 * 30 s (QA); with 4, it is at 4 min 14 s.
 */
export const PAGE_LATE_MS = 4 * 60_000;
const lateKey = (prefix: string, e: PagerEvent) => `${prefix}:pd-late:${e.dedupKey}:${e.timestamp}`;

/**
 * A page PagerDuty has not taken for PAGE_LATE_MS (down, unreachable, answering 5xx): said once in the channel, which
 * was told "PagerDuty page queued" (QA: nothing said so while the delivery retried for up to days).
 */
async function sayLate(deps: OutboxDeps, event: PagerEvent, reason: string): Promise<void> {
  if (event.action !== 'trigger' || Date.now() - Date.parse(event.timestamp) < PAGE_LATE_MS) return;
  if ((await deps.redis.set(lateKey(deps.prefix, event), '1', 'EX', 30 * 86_400, 'NX')) !== 'OK') return;
  await quietNotifier(deps.notifier, deps.log).post(pagerLateMessage(event, reason, Date.now()));
}
