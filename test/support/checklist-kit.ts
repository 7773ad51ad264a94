import { defaultTarget, loadConfig, type Config, type TargetConfig } from '../../src/config.ts';
import type { ChannelMessage, MessageRef, Notifier } from '../../src/notifications/types.ts';
import { resolvePolicy } from '../../src/schedules/policy.ts';

/** What the checklist tests share: a notifier that records, the `shop` target, a config around targets. */

/** Records what the bot would post, as our Notifier interface (the Slack side is covered by the e2e tests). */
export function recordingNotifier(): Notifier & { posted: ChannelMessage[] } {
  const posted: ChannelMessage[] = [];
  let n = 0;
  return {
    posted,
    async post(m): Promise<MessageRef> {
      posted.push(m);
      n += 1;
      return { channel: 'C0INCIDENTS', ts: `1700000000.${String(n).padStart(6, '0')}` };
    },
    async update() {},
    async reply() {},
  };
}

export const shop: TargetConfig = {
  ...defaultTarget('shop', 'postgres://pgbb@127.0.0.1:1/shop'),
  // Only the daily class: the fixtures make daily backups.
  policy: resolvePolicy({ name: 'shop', environment: 'production', schedules: { backups: { frequent: { enabled: false } } } }),
};

export function configWith(targets: TargetConfig[]): Config {
  const base = loadConfig({}, 'offline');
  // A full disk on the test machine must not decide these tests: the disk check's own figure is asserted instead.
  return { ...base, timezone: 'Europe/Paris', targets, health: { ...base.health, thresholds: { diskFreeMinRatio: 0 } } };
}
