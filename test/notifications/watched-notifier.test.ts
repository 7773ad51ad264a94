import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ChannelMessage, MessageRef, Notifier } from '../../src/notifications/types.ts';
import { WebClient } from '@slack/web-api';
import { SlackNotifier } from '../../src/notifications/slack-notifier.ts';
import { WatchedNotifier } from '../../src/notifications/watched-notifier.ts';
import { CLOSED_PORT } from '../support/closed-port.ts';
import { until } from '../support/until.ts';
import { startWorkerKit, type WorkerKit } from '../workers/worker-kit.ts';

/**
 * Posts that keep failing page; those Slack refuses for a reason no wait mends page at once. QA removed the bot from the channel (and revoked its token, and had Slack answer 500)
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

  const key = 'pg-backup-bot/_bot/slack';
  const msg = { text: 'Backup of shop succeeded' };
  const actions = () => kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action);
  /** Slack out of reach: connection refused, no answer of Slack's (a blip, until it lasts). */
  const unreachable = (): Notifier =>
    new SlackNotifier(new WebClient('xoxb-test', { slackApiUrl: `http://127.0.0.1:${CLOSED_PORT}/api/`, retryConfig: { retries: 0 } }), '#incidents');

  it('pages once when every post has failed for the set time, and resolves with the first that goes through', async () => {
    const before = kit.pd.events.length;
    const { through, invitedBack } = channelOf(unreachable());
    const watched = new WatchedNotifier(through, kit.escalation, '#incidents', 300);
    await expect(watched.post(msg)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100));
    expect(kit.pd.events.slice(before).filter((e) => e.dedup_key === key)).toEqual([]);
    await new Promise((r) => setTimeout(r, 250));
    await expect(watched.post(msg)).rejects.toThrow();
    const trigger = await kit.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === key, 30_000);
    expect(trigger.payload?.summary).toMatch(/^pg-backup-bot cannot post to #incidents: every post has failed for \d+ min \(Slack's last answer: .+\)$/);
    // Failing on: no second page.
    await expect(watched.post(msg)).rejects.toThrow();
    invitedBack(kit.notifier);
    await watched.post(msg);
    await kit.pd.waitFor((e) => e.event_action === 'resolve' && e.dedup_key === key, 30_000);
    expect(actions()).toEqual(['trigger', 'resolve']);
  });

  it('pages at the first post Slack refuses for a reason no wait mends (a mistyped channel), saying what to change', async () => {
    const seen = actions().length;
    // The channel as Slack has it: first one that does not exist, then, SLACK_CHANNEL corrected, #incidents.
    const { through, invitedBack } = channelOf(kit.notifierFor('#incidnets'));
    const watched = new WatchedNotifier(through, kit.escalation, '#incidnets', 10 * 60_000);
    await expect(watched.post(msg)).rejects.toThrow(/channel_not_found/);
    const trigger = await until('the page', () => kit.pd.events.filter((e) => e.dedup_key === key).at(seen), 30_000);
    expect(trigger.event_action).toBe('trigger');
    expect(trigger.payload?.summary).toBe(
      'pg-backup-bot cannot post to #incidnets: Slack answered channel_not_found (no channel by that name that the bot can see: check SLACK_CHANNEL; a private channel needs the bot invited)',
    );
    await expect(watched.post(msg)).rejects.toThrow(/channel_not_found/);
    // An update of an older message that still goes through resolves nothing: only a new post proves posting works.
    const older = await kit.notifier.post({ text: 'an older message' });
    await watched.update(older, { text: 'an older message, updated' });
    await new Promise((r) => setTimeout(r, 300));
    expect(actions().slice(seen)).toEqual(['trigger']);
    invitedBack(kit.notifier);
    await watched.post(msg);
    await until('the page resolved', () => (actions().length === seen + 2 ? true : undefined), 30_000);
    expect(actions().slice(seen)).toEqual(['trigger', 'resolve']);
  });

  it('an update Slack refuses with a setup answer waits the set time like any failure: the channel of an older message may be gone', async () => {
    const before = kit.pd.events.length;
    const watched = new WatchedNotifier(kit.notifier, kit.escalation, '#incidents', 10 * 60_000);
    await expect(watched.update({ channel: '#archived-long-ago', ts: '1.000001' }, msg)).rejects.toThrow(/channel_not_found/);
    await new Promise((r) => setTimeout(r, 300));
    expect(kit.pd.events.slice(before).filter((e) => e.dedup_key === key)).toEqual([]);
  });

  it('a page another process left open (a channel fixed in the config, the bot restarted) is resolved by the first post that goes through (second reader)', async () => {
    const seen = actions().length;
    await kit.escalation.failed('_bot', 'slack', {
      summary: 'pg-backup-bot cannot post to #incidnets: Slack answered channel_not_found',
      severity: 'error',
      details: {},
    });
    await until('the page', () => (actions().length === seen + 1 ? true : undefined), 30_000);
    const restarted = new WatchedNotifier(kit.notifier, kit.escalation, '#incidents', 10 * 60_000);
    await restarted.post(msg);
    await until('the page resolved', () => (actions().length === seen + 2 ? true : undefined), 30_000);
    expect(actions().slice(seen)).toEqual(['trigger', 'resolve']);
    // Only the first: later posts ask nothing of PagerDuty.
    await restarted.post(msg);
    await new Promise((r) => setTimeout(r, 300));
    expect(actions().slice(seen)).toEqual(['trigger', 'resolve']);
  });

  it('does not page a post that failed once among ones that go through', async () => {
    const { through, invitedBack } = channelOf(unreachable());
    const watched = new WatchedNotifier(through, kit.escalation, '#incidents', 300);
    const before = kit.pd.events.length;
    await expect(watched.post({ text: 'x' })).rejects.toThrow();
    invitedBack(kit.notifier);
    await watched.post({ text: 'y' });
    await new Promise((r) => setTimeout(r, 350));
    await watched.post({ text: 'z' });
    await new Promise((r) => setTimeout(r, 500));
    expect(kit.pd.events.slice(before).filter((e) => e.dedup_key === 'pg-backup-bot/_bot/slack')).toEqual([]);
  });
});
