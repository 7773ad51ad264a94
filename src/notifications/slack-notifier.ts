import type { WebClient } from '@slack/web-api';
import type { ChannelMessage, MessageRef, Notifier } from './types.ts';
import { UpdateLanes } from './update-lanes.ts';

/** How long, after a call Slack did not answer, further calls fail at once instead of waiting on it again. */
export const SLACK_QUIET_MS = 60_000;

/**
 * Posts to one channel with the bot token (not response_url: that expires after 30 minutes and 5 uses).
 *
 * A Slack that does not answer (its calls time out, deps.ts slackWebClient) costs one call's wait, not one per
 * message: for SLACK_QUIET_MS after, calls fail at once. Every job posts before it works and the health run posts
 * target after target; each waiting its turn on a hung Slack held backups and pages back for minutes (QA).
 */
export class SlackNotifier implements Notifier {
  /** chat.update calls of one message go out one at a time, newest state last (update-lanes.ts). */
  private readonly lanes = new UpdateLanes();
  private quietUntil = 0;

  constructor(
    private readonly client: WebClient,
    private readonly channel: string,
    private readonly quietMs = SLACK_QUIET_MS,
  ) {}

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    if (Date.now() < this.quietUntil) {
      throw new Error(`Slack did not answer a call in time; not waiting on it again until ${new Date(this.quietUntil).toISOString()}`);
    }
    try {
      return await fn();
    } catch (err) {
      // No answer at all (a timeout, a connection refused or reset), after the client's retries; a refusal Slack
      // answers (channel_not_found, invalid_auth) comes back at once and does not count, nor does its rate limit,
      // which the client wraps as a request error too ("A rate limit was exceeded"): Slack answered.
      const e = err as { code?: string; original?: { message?: string } };
      if (e.code === 'slack_webapi_request_error' && !/rate limit/i.test(e.original?.message ?? '')) this.quietUntil = Date.now() + this.quietMs;
      throw err;
    }
  }

  async post(message: ChannelMessage): Promise<MessageRef> {
    const res = await this.call(() =>
      this.client.chat.postMessage({ channel: this.channel, text: message.text, ...(message.blocks ? { blocks: message.blocks } : {}) }),
    );
    // chat.update needs the channel ID; postMessage accepts a name and answers with the ID.
    return { channel: res.channel ?? this.channel, ts: res.ts ?? '' };
  }

  async update(ref: MessageRef, message: ChannelMessage): Promise<void> {
    await this.lanes.run(`${ref.channel}/${ref.ts}`, async () => {
      await this.call(() =>
        this.client.chat.update({ channel: ref.channel, ts: ref.ts, text: message.text, ...(message.blocks ? { blocks: message.blocks } : {}) }),
      );
    });
  }

  async reply(ref: MessageRef, message: ChannelMessage): Promise<void> {
    await this.call(() =>
      this.client.chat.postMessage({ channel: ref.channel, thread_ts: ref.ts, text: message.text, ...(message.blocks ? { blocks: message.blocks } : {}) }),
    );
  }
}
