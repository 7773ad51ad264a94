import { describe, expect, it } from 'vitest';
import { defaultTarget, loadConfig, type Config } from '../../src/config.ts';
import { collectHealthInput } from '../../src/health/collect.ts';
import { firstBackupDue, longestScheduledGapHours, targetThresholds } from '../../src/health/target-thresholds.ts';
import { resolvePolicy } from '../../src/schedules/policy.ts';
import { tempStorage } from '../support/postgres-helpers.ts';

const NOW = new Date('2026-11-18T09:00:00Z');
const shop = defaultTarget('shop', 'postgres://pgbb@127.0.0.1:1/shop');
const stage = defaultTarget('stage', 'postgres://pgbb@127.0.0.1:1/stage', 'staging');
const manualOnly = {
  ...defaultTarget('adhoc', 'postgres://pgbb@127.0.0.1:1/adhoc'),
  policy: resolvePolicy({ name: 'adhoc', environment: 'production', schedules: { backups: { daily: { enabled: false }, frequent: { enabled: false } } } }),
};

function config(over: Partial<Config> = {}): Config {
  const base = loadConfig({}, 'offline');
  return { ...base, timezone: 'Europe/Paris', targets: [shop, stage, manualOnly], ...over };
}

describe('longestScheduledGapHours', () => {
  it('is the longest wait between two scheduled backups of the target, all its schedules together', () => {
    expect(longestScheduledGapHours(shop.policy, 'Europe/Paris', NOW)).toBe(6);
    expect(longestScheduledGapHours(stage.policy, 'Europe/Paris', NOW)).toBe(168);
    expect(longestScheduledGapHours(manualOnly.policy, 'Europe/Paris', NOW)).toBeNull();
  });

  it('counts the wait it is in: a weekly target in the week its zone falls back, checked after its run was due (QA)', () => {
    // Sunday 2027-10-31 02:00 EDT (06:00Z), then Sunday 2027-11-07 02:00 EST (07:00Z): 169 h. At 07:15Z the runs
    // ahead are all 168 h apart; the limit must still cover the 169 h the newest backup is in, and an hour more.
    const at = new Date('2027-11-07T07:15:00Z');
    expect(longestScheduledGapHours(stage.policy, 'America/New_York', at)).toBe(169);
    const forTarget = targetThresholds({ ...config(), timezone: 'America/New_York' }, () => at);
    expect(forTarget('stage').staleHours).toBe(170);
  });
});

describe('targetThresholds', () => {
  it('gives a weekly staging target a week and an hour before its backup is too old; daily ones keep 25 h', () => {
    const forTarget = targetThresholds(config(), () => NOW);
    expect(forTarget('stage').staleHours).toBe(169);
    expect(forTarget('shop').staleHours).toBe(25);
    // No schedule, no rhythm to follow: the config's thresholds as they are.
    expect(forTarget('adhoc').staleHours).toBeUndefined();
  });

  it('leaves the limits to the config file when it sets them', () => {
    const base = config();
    expect(targetThresholds({ ...base, health: { ...base.health, thresholds: { staleHours: 30 } } })('stage')).toEqual({ staleHours: 30 });
    expect(targetThresholds({ ...base, health: { ...base.health, thresholds: { staleHoursByClass: { weekly: 200 } } } })('stage')).toEqual({
      staleHoursByClass: { weekly: 200 },
    });
  });

  it('is what the health checks judge a target by', async () => {
    const { storage, cleanup } = await tempStorage();
    try {
      const c = config();
      const input = await collectHealthInput(
        { storage, runs: null, backupQueue: null, thresholds: c.health.thresholds, thresholdsFor: targetThresholds(c, () => NOW) },
        'stage',
        NOW,
      );
      expect(input.thresholds?.staleHours).toBe(169);
    } finally {
      await cleanup();
    }
  });
});

describe('firstBackupDue', () => {
  it("is the target's first scheduled backup after the bot first saw it; without a schedule, its stale limit later", () => {
    const due = firstBackupDue(config());
    // 09:00 UTC is 10:00 in Paris: the 6-hourly backup at 12:00 Paris comes before the daily 02:00.
    expect(due('shop', NOW).toISOString()).toBe('2026-11-18T11:00:00.000Z');
    expect(due('stage', NOW).toISOString()).toBe('2026-11-22T01:00:00.000Z');
    expect(due('adhoc', NOW).toISOString()).toBe('2026-11-19T10:00:00.000Z');
  });
});
