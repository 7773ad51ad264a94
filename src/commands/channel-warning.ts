import { dedupKey, pageStateKey } from '../notifications/escalation.ts';
import type { RedisConnection } from '../redis-client.ts';
import type { Reply } from './backup-command.ts';

/**
 * A reply that says its result will be posted in the channel, said with a warning while posting there is paged as
 * failing (`pg-backup-bot/_bot/slack`, WatchedNotifier): QA, with a mistyped SLACK_CHANNEL, had every reply go on
 * promising "#incidentz" after the page. One Redis read, only for such replies; a Redis that does not answer says
 * nothing more.
 */
export function withChannelWarning<I>(
  handle: (input: I) => Promise<Reply>,
  o: { redis: Pick<RedisConnection, 'get'>; prefix: string; channel: string },
): (input: I) => Promise<Reply> {
  const key = pageStateKey(o.prefix, dedupKey('_bot', 'slack'));
  return async (input) => {
    const reply = await handle(input);
    if (!reply.text.includes(`posted in ${o.channel}`)) return reply;
    if ((await o.redis.get(key).catch(() => null)) !== 'triggered') return reply;
    const warning = `:warning: Posts to ${o.channel} are failing right now (paged as pg-backup-bot/_bot/slack): follow the job with \`/backup status\`.`;
    return {
      ...reply,
      text: `${reply.text}\n${warning}`,
      ...(reply.blocks ? { blocks: [...reply.blocks, { type: 'context', elements: [{ type: 'mrkdwn', text: warning }] }] } : {}),
    };
  };
}
