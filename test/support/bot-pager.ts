import { Agent } from 'node:https';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, inject } from 'vitest';
import { createQueues, type Queues } from '../../src/jobs/queues.ts';
import { createLogger } from '../../src/logger.ts';
import { ConsoleNotifier } from '../../src/notifications/console-notifier.ts';
import { createEscalation } from '../../src/notifications/escalation.ts';
import { createPagerDutyClient } from '../../src/notifications/pagerduty-client.ts';
import { createWorkerPager } from '../../src/worker-pager.ts';
import { type PagerDutyServer, startPagerDutyServer } from './pagerduty-server.ts';

const ROUTING_KEY = 'R0UTINGKEY0000000000000000000000';

/**
 * The pages the Slack side delivers itself (src/worker-pager.ts), wired as the bot wires them: real Redis, the real
 * escalation and PagerDuty client against the strict Events API stand-in, and no BullMQ worker anywhere. Call in a
 * describe block: it starts the stand-in and Redis client before the tests and closes them after.
 */
export function botPagerKit(name: string) {
  const ctx = { pd: undefined as unknown as PagerDutyServer, redis: undefined as unknown as Redis };
  const opened: Queues[] = [];
  let n = 0;
  beforeAll(async () => {
    ctx.pd = await startPagerDutyServer({ routingKey: ROUTING_KEY });
    ctx.redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    await Promise.allSettled(opened.map((q) => q.close()));
    await Promise.allSettled([ctx.pd?.close(), ctx.redis?.quit()]);
  });
  /** One bot process's pager on `prefix` (a new one unless given); `condition` as createWorkerPager takes it. */
  const pager = (o: { prefix?: string; condition?: string } = {}) => {
    const prefix = o.prefix ?? `{${name}-${process.pid}-${n++}}`;
    const queues = createQueues(ctx.redis, prefix);
    opened.push(queues);
    const told: string[] = [];
    const log = createLogger({ level: 'silent' });
    const client = createPagerDutyClient({ eventsUrl: ctx.pd.eventsUrl, routingKey: ROUTING_KEY, agent: new Agent({ ca: ctx.pd.ca }) });
    const escalation = createEscalation({ redis: ctx.redis, queue: queues.pagerduty, prefix, enabled: true, source: 'pg-backup-bot' });
    const notifier = new ConsoleNotifier((line) => told.push(line));
    const made = createWorkerPager({
      escalation,
      redis: ctx.redis,
      prefix,
      client,
      notifier,
      log,
      retryMs: 100,
      ...(o.condition ? { condition: o.condition } : {}),
    });
    return { prefix, queues, told, log, pager: made };
  };
  return { ctx, pager };
}
