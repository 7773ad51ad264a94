import type { Logger } from '../logger.ts';
import type { ChannelMessage, MessageRef, Notifier } from '../notifications/types.ts';

/** Slack trouble is logged, never thrown: the backup's outcome must not depend on the chat being up. */
export function quietNotifier(n: Notifier, log: Logger) {
  return {
    async post(m: ChannelMessage): Promise<MessageRef | undefined> {
      try {
        return await n.post(m);
      } catch (err) {
        log.warn({ err }, 'could not post to the channel');
        return undefined;
      }
    },
    async update(ref: MessageRef, m: ChannelMessage): Promise<void> {
      await n.update(ref, m).catch((err: unknown) => log.warn({ err }, 'could not update the channel message'));
    },
    async reply(ref: MessageRef, m: ChannelMessage): Promise<void> {
      await n.reply(ref, m).catch((err: unknown) => log.warn({ err }, 'could not reply in the thread'));
    },
  };
}
