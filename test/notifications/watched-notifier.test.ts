import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ChannelMessage, MessageRef, Notifier } from '../../src/notifications/types.ts';
import { WatchedNotifier } from '../../src/notifications/watched-notifier.ts';
import { startWorkerKit, type WorkerKit } from '../workers/worker-kit.ts';

/**
 * Posts that keep failing page: QA removed the bot from the channel (and revoked its token, and had Slack answer 500)
 * and every post that pages nobody was lost, with only a warn line in the logs. Against the strict Slack stand-in (a
 * channel it does not know answers `channel_not_found`) and the PagerDuty stand-in through the real delivery.
 */
/** Posts through one real Slack notifier, then (the bot invited back) through another. */
function channelOf(first: Notifier): { through: Notifier; invitedBack: (next: Notifier) => void } {
  let slack = first;
  const through: Notifier = {
    post: (m: ChannelMessage) => slack.post(m),
    update: (r: MessageRef, m: ChannelMessage) => slack.update(r, m),
    reply: (r: MessageRef, m: ChannelMessage) => slack.reply(r, m),
  };
  const invitedBack = (next: Notifier) => {
    slack = next;
  };
  return { through, invitedBack };
}

describe('the channel watched', () => {
  let kit: WorkerKit;
  beforeAll(async () => {
    kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  });
  afterAll(async () => kit?.stop());

  it('pages once when every post has failed for the set time, and resolves with the first that goes through', async () => {
    // The channel as Slack has it: first one the bot is not in, then, the bot invited back, #incidents.
    const { through, invitedBack } = channelOf(kit.notifierFor('#left-channel'));
    const watched = new WatchedNotifier(through, kit.escalation, '#left-channel', 300);
    const msg = { text: 'Backup of shop succeeded' };
    const key = 'pg-backup-bot/_bot/slack';
    await expect(watched.post(msg)).rejects.toThrow(/channel_not_found/);
    await new Promise((r) => setTimeout(r, 350));
    await expect(watched.post(msg)).rejects.toThrow(/channel_not_found/);
    const trigger = await kit.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === key, 30_000);
    expect(trigger.payload?.summary).toMatch(
      /^pg-backup-bot cannot post to #left-channel: every post has failed for \d+ min \(Slack's last answer: channel_not_found\)$/,
    );
    // Failing on: no second page.
    await expect(watched.post(msg)).rejects.toThrow(/channel_not_found/);
    invitedBack(kit.notifier);
    await watched.post(msg);
    await kit.pd.waitFor((e) => e.event_action === 'resolve' && e.dedup_key === key, 30_000);
    expect(kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action)).toEqual(['trigger', 'resolve']);
  });

  it('does not page a post that failed once among ones that go through', async () => {
    const { through, invitedBack } = channelOf(kit.notifierFor('#left-channel'));
    const watched = new WatchedNotifier(through, kit.escalation, '#incidents', 300);
    const before = kit.pd.events.length;
    await expect(watched.post({ text: 'x' })).rejects.toThrow(/channel_not_found/);
    invitedBack(kit.notifier);
    await watched.post({ text: 'y' });
    await new Promise((r) => setTimeout(r, 350));
    await watched.post({ text: 'z' });
    await new Promise((r) => setTimeout(r, 500));
    expect(kit.pd.events.slice(before).filter((e) => e.dedup_key === 'pg-backup-bot/_bot/slack')).toEqual([]);
  });
});
