import type { WebClient } from '@slack/web-api';
import type { ChannelMessage, MessageRef, Notifier } from './types.ts';
import { UpdateLanes } from './update-lanes.ts';

/** Posts to one channel with the bot token (not response_url: that expires after 30 minutes and 5 uses). */
export class SlackNotifier implements Notifier {
  /** chat.update calls of one message go out one at a time, newest state last (update-lanes.ts). */
  private readonly lanes = new UpdateLanes();

  constructor(
    private readonly client: WebClient,
    private readonly channel: string,
  ) {}

  async post(message: ChannelMessage): Promise<MessageRef> {
    const res = await this.client.chat.postMessage({ channel: this.channel, text: message.text, ...(message.blocks ? { blocks: message.blocks } : {}) });
    // chat.update needs the channel ID; postMessage accepts a name and answers with the ID.
    return { channel: res.channel ?? this.channel, ts: res.ts ?? '' };
  }

  async update(ref: MessageRef, message: ChannelMessage): Promise<void> {
    await this.lanes.run(`${ref.channel}/${ref.ts}`, async () => {
      await this.client.chat.update({ channel: ref.channel, ts: ref.ts, text: message.text, ...(message.blocks ? { blocks: message.blocks } : {}) });
    });
  }

  async reply(ref: MessageRef, message: ChannelMessage): Promise<void> {
    await this.client.chat.postMessage({
      channel: ref.channel,
      thread_ts: ref.ts,
      text: message.text,
      ...(message.blocks ? { blocks: message.blocks } : {}),
    });
  }
}
