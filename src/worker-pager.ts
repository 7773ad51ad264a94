import { hostname } from 'node:os';
import type { Logger } from './logger.ts';
import { dedupKey, type Escalation } from './notifications/escalation.ts';
import type { PagerDutyClient } from './notifications/pagerduty-client.ts';
import type { Notifier } from './notifications/types.ts';
import type { RedisConnection } from './redis-client.ts';
import { deliverOutbox } from './workers/pagerduty-worker.ts';

/**
 * The pages about the workers themselves: `all`'s worker child that keeps dying (worker-supervisor.ts), and no
 * worker process running anywhere (worker-presence.ts). Every other page goes through the
 * pagerduty queue, which the worker delivers: with the worker down, this one would wait in Redis until the worker is
 * back, which is when it is no longer needed. So the bot records it the usual way (escalation: one page per episode,
 * its state in Redis, the event in the key's outbox) and then delivers that outbox itself, trying again every
 * `retryMs` (30 s) until PagerDuty has it. A worker that comes back delivers the same outbox from its queue job;
 * neither drops or reorders an event (deliverOutbox).
 */
export interface WorkerPager {
  /** Pages once per episode; resolves with the channel’s sentence ("PagerDuty page queued …", or why nobody was). */
  down(summary: string, details: Record<string, unknown>): Promise<string>;
  /** Resolves the page if one is open, also one an earlier process left; the channel's sentence, or null. */
  up(summary: string): Promise<string | null>;
  /** No more retries. */
  stop(): void;
}

export interface WorkerPagerDeps {
  escalation: Escalation;
  redis: RedisConnection;
  prefix: string;
  client: PagerDutyClient | null;
  notifier: Notifier;
  log: Logger;
  host?: string;
  /** The condition paged (target `_bot`): by default this host's worker child, `worker-process:<host>`. */
  condition?: string;
  retryMs?: number;
}

/** `_bot` is the target of the bot's own conditions (as the schedules' page); one condition per host. */
const workerProcessCondition = (host: string) => `worker-process:${host}`;

export function createWorkerPager(deps: WorkerPagerDeps): WorkerPager {
  const condition = deps.condition ?? workerProcessCondition(deps.host ?? hostname());
  const key = dedupKey('_bot', condition);
  const log = deps.log.child({ dedupKey: key });
  const retryMs = deps.retryMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let sending: Promise<void> | null = null;

  /** Delivers the outbox until it is empty, again every `retryMs` while PagerDuty (or Redis) fails. */
  const flush = (): Promise<void> => {
    const client = deps.client;
    if (!client || stopped) return Promise.resolve();
    clearTimeout(timer);
    sending ??= deliverOutbox({ ...deps, client, log }, key)
      .then(
        () => undefined,
        (err: unknown) => {
          log.warn({ err: { message: (err as Error).message }, retryInMs: retryMs }, 'could not deliver the page about the workers yet; trying again');
          if (!stopped) timer = setTimeout(() => void flush(), retryMs).unref();
        },
      )
      .finally(() => {
        sending = null;
      });
    return sending;
  };

  /** Records the event (Redis), then delivers it. A Redis that refuses is logged and said: the bot is blind then anyway. */
  const record = async <T>(what: () => Promise<T>, failed: (err: Error) => T): Promise<T> => {
    try {
      const sentence = await what();
      void flush();
      return sentence;
    } catch (err) {
      log.error({ err: { message: (err as Error).message } }, 'could not record the page about the workers');
      return failed(err as Error);
    }
  };

  return {
    down: (summary, details) =>
      record(
        () => deps.escalation.failed('_bot', condition, { summary, severity: 'critical', details }),
        (err) => `PagerDuty could not be paged: Redis refused the page (${err.message}); the process logs say more`,
      ),
    up: (summary) =>
      record(
        () => deps.escalation.passed('_bot', condition, { summary }),
        () => null,
      ),
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
