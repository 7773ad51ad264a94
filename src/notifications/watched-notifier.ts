import type { Escalation } from './escalation.ts';
import { slackAnswer, type SlackFailures } from './slack-failures.ts';
import type { ChannelMessage, MessageRef, Notifier } from './types.ts';

/** How long every post may fail before PagerDuty hears that the channel does not: a Slack blip is not a page. */
export const SLACK_DOWN_AFTER_MS = 10 * 60_000;

/**
 * Slack's answers that no wait mends (a channel mistyped, the bot not in it, a token revoked): they page at the first
 * post they fail, not after SLACK_DOWN_AFTER_MS (QA: a mistyped SLACK_CHANNEL paged only at the first post ten
 * minutes after the first failure, hours later on a quiet day). What each means, for the page.
 */
const SETUP_ANSWERS = new Map<string, string>(
  Object.entries({
    channel_not_found: 'no channel by that name that the bot can see: check SLACK_CHANNEL; a private channel needs the bot invited',
    not_in_channel: 'the bot is not in the channel: invite it, or give the app the chat:write.public scope for a public one',
    is_archived: 'the channel is archived: unarchive it, or set SLACK_CHANNEL to another',
    invalid_auth: 'SLACK_BOT_TOKEN is not valid: reinstall the app and set its bot token',
    not_authed: 'no SLACK_BOT_TOKEN reached Slack',
    token_revoked: 'SLACK_BOT_TOKEN was revoked: reinstall the app and set its new bot token',
    token_expired: 'SLACK_BOT_TOKEN expired: reinstall the app and set its new bot token',
    account_inactive: "the bot's Slack account is deactivated: reinstall the app",
    missing_scope: 'the app lacks the chat:write scope: add it and reinstall',
    restricted_action: 'the workspace does not let the bot post in that channel',
  }),
);

/**
 * The channel itself watched (QA: a revoked token, the bot removed from the channel, a Slack that answers 500 lost
 * every post that pages nobody — successes, drift, warnings, the disk — and only the logs knew). Posts that keep
 * failing for SLACK_DOWN_AFTER_MS page `pg-backup-bot/_bot/slack` once, with Slack's last answer; the next post that
 * goes through resolves it. Per process, and the escalation pages each episode once across processes.
 */
export class WatchedNotifier implements Notifier {
  private failingSince: number | null = null;
  private paged = false;
  /** This process has posted once: the first post that goes through resolves a page left open (see watch). */
  private posted = false;

  constructor(
    private readonly inner: Notifier,
    private readonly escalation: Escalation,
    private readonly channel: string,
    private readonly afterMs = SLACK_DOWN_AFTER_MS,
    /** Every failure counted (slack-failures.ts), for /metrics; absent: not counted. */
    private readonly failures?: Pick<SlackFailures, 'record'>,
  ) {}

  post(message: ChannelMessage): Promise<MessageRef> {
    return this.watch(() => this.inner.post(message), 'post');
  }

  update(ref: MessageRef, message: ChannelMessage): Promise<void> {
    return this.watch(() => this.inner.update(ref, message), 'update');
  }

  reply(ref: MessageRef, message: ChannelMessage): Promise<void> {
    return this.watch(() => this.inner.reply(ref, message), 'reply');
  }

  /**
   * Only a new post pages at once on a setup answer, and only a new post resolves a page: an update or thread reply
   * to an older message may still go through where new posts are refused (an announcement-only channel), and must
   * neither page nor resolve in turn with each post (second reader).
   */
  private async watch<T>(call: () => Promise<T>, kind: 'post' | 'update' | 'reply'): Promise<T> {
    try {
      const result = await call();
      if (this.failingSince !== null && (kind === 'post' || !this.paged)) await this.cleared();
      else if (kind === 'post' && !this.posted) {
        // A page another process (or this one before a restart: a channel fixed in the config) left open is resolved
        // by the first post that goes through; else it stayed open and silenced the next outage (second reader).
        await this.escalation.passed('_bot', 'slack', { summary: `pg-backup-bot posts to ${this.channel}` }).catch(() => undefined);
      }
      if (kind === 'post') this.posted = true;
      return result;
    } catch (err) {
      await this.failed(err, kind);
      throw err;
    }
  }

  private async failed(err: unknown, kind: 'post' | 'update' | 'reply'): Promise<void> {
    const now = Date.now();
    // Two failures hours apart with no post through between them are one episode: nothing shows Slack worked meanwhile.
    this.failingSince ??= now;
    const answer = (err as { data?: { error?: string }; message?: string }).data?.error ?? (err as Error).message ?? String(err);
    // Never awaited: with Redis down the count waits for it, and this failure must not (the Redis page goes on).
    void this.failures?.record(slackAnswer(err)).catch(() => undefined);
    const meaning = kind === 'post' ? SETUP_ANSWERS.get(answer) : undefined;
    if (this.paged || (!meaning && now - this.failingSince < this.afterMs)) return;
    this.paged = true;
    const minutes = Math.round((now - this.failingSince) / 60_000);
    await this.escalation
      .failed('_bot', 'slack', {
        summary: meaning
          ? `pg-backup-bot cannot post to ${this.channel}: Slack answered ${answer} (${meaning})`
          : `pg-backup-bot cannot post to ${this.channel}: every post has failed for ${minutes} min (Slack's last answer: ${answer})`,
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
