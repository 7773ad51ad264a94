import type { Escalation } from './escalation.ts';
import type { ChannelMessage, MessageRef, Notifier } from './types.ts';

/** How long every post may fail before PagerDuty hears that the channel does not: a Slack blip is not a page. */
export const SLACK_DOWN_AFTER_MS = 10 * 60_000;

/**
 * The channel itself watched (QA: a revoked token, the bot removed from the channel, a Slack that answers 500 lost
 * every post that pages nobody — successes, drift, warnings, the disk — and only the logs knew). Posts that keep
 * failing for SLACK_DOWN_AFTER_MS page `pg-backup-bot/_bot/slack` once, with Slack's last answer; the next post that
 * goes through resolves it. Per process, and the escalation pages each episode once across processes.
 */
export class WatchedNotifier implements Notifier {
  private failingSince: number | null = null;
  private paged = false;

  constructor(
    private readonly inner: Notifier,
    private readonly escalation: Escalation,
    private readonly channel: string,
    private readonly afterMs = SLACK_DOWN_AFTER_MS,
  ) {}

  post(message: ChannelMessage): Promise<MessageRef> {
    return this.watch(() => this.inner.post(message));
  }

  update(ref: MessageRef, message: ChannelMessage): Promise<void> {
    return this.watch(() => this.inner.update(ref, message));
  }

  reply(ref: MessageRef, message: ChannelMessage): Promise<void> {
    return this.watch(() => this.inner.reply(ref, message));
  }

  private async watch<T>(call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      if (this.failingSince !== null) await this.cleared();
      return result;
    } catch (err) {
      await this.failed(err);
      throw err;
    }
  }

  private async failed(err: unknown): Promise<void> {
    const now = Date.now();
    this.failingSince ??= now;
    if (this.paged || now - this.failingSince < this.afterMs) return;
    this.paged = true;
    const answer = (err as { data?: { error?: string }; message?: string }).data?.error ?? (err as Error).message ?? String(err);
    const minutes = Math.round((now - this.failingSince) / 60_000);
    await this.escalation
      .failed('_bot', 'slack', {
        summary: `pg-backup-bot cannot post to ${this.channel}: every post has failed for ${minutes} min (Slack's last answer: ${answer})`,
        severity: 'error',
        details: { channel: this.channel, answer, since: new Date(this.failingSince).toISOString() },
      })
      .catch(() => undefined);
  }

  private async cleared(): Promise<void> {
    const wasPaged = this.paged;
    this.failingSince = null;
    this.paged = false;
    if (wasPaged) await this.escalation.passed('_bot', 'slack', { summary: `pg-backup-bot posts to ${this.channel} again` }).catch(() => undefined);
  }
}
