import { describe, expect, it } from 'vitest';
import {
  ScheduleConfigSchema,
  ScheduledBaseBackupData,
  formatScheduleStatus,
  planSchedulers,
  resolvePolicy,
  scheduleStatus,
} from '../../src/schedules/index.ts';
import { BaseBackupJobData } from '../../src/jobs/base-backup-data.ts';

const plan = (pitr: unknown) => {
  const config = ScheduleConfigSchema.parse({
    timezone: 'Europe/Paris',
    targets: [
      { name: 'shop', urlEnv: 'SHOP_URL', environment: 'production', ...(pitr === undefined ? {} : { pitr }) },
      { name: 'blog', urlEnv: 'BLOG_URL', environment: 'staging' },
    ],
    retention: { enabled: false },
    reminders: { daily: { enabled: false }, weekly: { enabled: false }, monthly: { enabled: false } },
  });
  return { config, planned: planSchedulers(config, config.targets.map(resolvePolicy)) };
};

describe('the base-backup schedule', () => {
  it('defaults to weekly, Sunday 01:00 in the configured zone, on the base-backup queue, for pitr targets only', () => {
    const { config, planned } = plan({ urlEnv: 'SHOP_REPLICATION_URL' });
    expect(config.targets[0]?.pitr?.baseBackup).toEqual({ enabled: true, afterBreak: true, cron: '0 1 * * 0', maxAgeHours: 192 });
    const base = planned.filter((p) => p.queue === 'base-backup');
    expect(base).toHaveLength(1);
    expect(base[0]).toMatchObject({
      id: 'pgbb:base-backup:shop',
      queue: 'base-backup',
      name: 'scheduled-base-backup',
      pattern: '0 1 * * 0',
      tz: 'Europe/Paris',
      target: 'shop',
      rule: null,
    });
    // Its template is valid job data for the worker's door, and holds names only.
    expect(ScheduledBaseBackupData.safeParse(base[0]?.data).success).toBe(true);
    expect(BaseBackupJobData.safeParse(base[0]?.data).success).toBe(true);
    expect(JSON.stringify(base[0]?.data)).not.toMatch(/REPLICATION_URL|postgres:/);
  });

  it('follows the config: another cron, or none at all', () => {
    expect(plan({ urlEnv: 'R', baseBackup: { cron: '30 2 * * 3' } }).planned.find((p) => p.queue === 'base-backup')?.pattern).toBe('30 2 * * 3');
    expect(plan({ urlEnv: 'R', baseBackup: { enabled: false } }).planned.some((p) => p.queue === 'base-backup')).toBe(false);
    expect(plan(undefined).planned.some((p) => p.queue === 'base-backup')).toBe(false);
    expect(() => plan({ urlEnv: 'R', baseBackup: { cron: 'every sunday' } })).toThrow();
    expect(() => plan({ urlEnv: 'R', baseBackup: { maxAgeHours: 0 } })).toThrow();
  });

  it('is shown by /backup status with its next run in the zone', () => {
    const { planned } = plan({ urlEnv: 'SHOP_REPLICATION_URL' });
    const text = formatScheduleStatus(scheduleStatus(planned, new Date('2026-11-25T00:30:00Z')), 'Europe/Paris');
    expect(text).toMatch(/• base backup \(point-in-time recovery\): every Sunday at 01:00 — next Sun 2026-11-29 01:00 UTC\+01:00/);
  });
});
