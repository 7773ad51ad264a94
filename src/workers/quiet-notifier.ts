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
    /**
     * A job's verdict: its message updated in place, so the verdict is the message's final state; or, when the
     * opening post never made it (rate-limited, Slack down) or the update fails, a message of its own. Returns where
     * the details go, so a verdict always gets its thread.
     */
    async finish(anchor: MessageRef | undefined, m: ChannelMessage): Promise<MessageRef | undefined> {
      if (anchor) {
        try {
          await n.update(anchor, m);
          return anchor;
        } catch (err) {
          log.warn({ err }, 'could not update the channel message with the verdict; posting it as a new message');
        }
      }
      return this.post(m);
    },
    async reply(ref: MessageRef | undefined, m: ChannelMessage): Promise<void> {
      if (!ref) return;
      await n.reply(ref, m).catch((err: unknown) => log.warn({ err }, 'could not reply in the thread'));
    },
  };
}

/** Progress edits of a channel message, at most one per `intervalMs` unless forced (a phase change). */
export function throttledEdits(
  say: ReturnType<typeof quietNotifier>,
  anchor: MessageRef | undefined,
  intervalMs: number,
  render: (text: string) => ChannelMessage,
) {
  let lastEdit = 0;
  return (text: string, force = false) => {
    const t = Date.now();
    if (!anchor || (!force && t - lastEdit < intervalMs)) return;
    lastEdit = t;
    void say.update(anchor, render(text));
  };
}
