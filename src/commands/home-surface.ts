import type { App, BlockButtonAction } from '@slack/bolt';
import { QueueEvents } from 'bullmq';
import { duplicateRedis, type RedisConnection } from '../redis-client.ts';
import { QUEUE } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { buildHome, HOME_BACKUP_ACTION, HOME_RESTORE_TEST_ACTION, type HomeDeps, type HomeView } from './home.ts';
import type { CommandHandler } from './index.ts';

/**
 * The App Home's wiring: published when a user opens it, after a button click (with what the click did), and
 * again for everyone who opened it in the last week whenever a backup, restore test or restore finishes.
 * The buttons run the slash commands' own handlers, guard and roles included, so the Home can do nothing a
 * command could not.
 */
export interface HomeSurfaceOptions {
  deps: HomeDeps;
  /** The slash commands as the bot serves them (commandTable): `/backup` and `/restore-test` answer the buttons. */
  handlers: Record<string, CommandHandler>;
  redis: RedisConnection;
  queuePrefix: string;
  log: Logger;
}

/** Who opened the Home recently: a sorted set of user ids by the time they last opened it. */
const VIEWERS_DAYS = 7;

export function registerHome(app: App, o: HomeSurfaceOptions): { stop(): Promise<void> } {
  const viewersKey = `${o.queuePrefix}:home:viewers`;
  const publish = async (userId: string, view: HomeView) => {
    await app.client.views.publish({ user_id: userId, view }).catch((err: unknown) => o.log.warn({ err, userId }, 'could not publish the App Home'));
  };

  const looking = (userId: string) => o.redis.zadd(viewersKey, Date.now(), userId).catch((err: unknown) => o.log.debug({ err }, 'home viewer not remembered'));

  app.event('app_home_opened', async ({ event }) => {
    if (event.tab !== 'home') return;
    await looking(event.user);
    await publish(event.user, await buildHome(o.deps));
  });

  const button = (actionId: string, command: '/backup' | '/restore-test', words: (target: string) => string) =>
    app.action<BlockButtonAction>(actionId, async ({ ack, body, action }) => {
      await ack();
      await looking(body.user.id);
      const handle = o.handlers[command];
      const target = action.value ?? '';
      const reply = handle
        ? await handle({ text: words(target), userId: body.user.id, userName: body.user.name ?? body.user.id })
        : { text: `${command} is not served here.` };
      await publish(body.user.id, await buildHome(o.deps, reply.text));
    });
  button(HOME_BACKUP_ACTION, '/backup', (t) => `now ${t}`);
  button(HOME_RESTORE_TEST_ACTION, '/restore-test', (t) => `latest ${t}`);

  // A job's end changes what the Home shows: one rebuild for everyone, a second after a burst of ends.
  let timer: NodeJS.Timeout | undefined;
  const refresh = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      void refreshAll().catch((err: unknown) => o.log.warn({ err }, 'could not refresh the App Home'));
    }, 1000);
  };
  const refreshAll = async () => {
    await o.redis.zremrangebyscore(viewersKey, '-inf', String(Date.now() - VIEWERS_DAYS * 86_400_000));
    const viewers = await o.redis.zrange(viewersKey, '0', '-1');
    if (viewers.length === 0) return;
    const view = await buildHome(o.deps);
    for (const user of viewers) await publish(user, view);
  };
  const listeners = [QUEUE.backup, QUEUE.restoreTest, QUEUE.restore].map((name) => {
    // Its own blocking connection, which QueueEvents closes (BullMQ wants maxRetriesPerRequest null there).
    const events = new QueueEvents(name, { connection: duplicateRedis(o.redis, { maxRetriesPerRequest: null }), prefix: o.queuePrefix });
    events.on('completed', refresh);
    events.on('failed', refresh);
    events.on('error', (err) => o.log.debug({ err, queue: name }, 'queue events'));
    return events;
  });

  return {
    async stop() {
      clearTimeout(timer);
      await Promise.all(listeners.map((l) => l.close()));
    },
  };
}
