import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, SCHEDULE_SECTION_SHAPE, ScheduleConfigSchema, resolvePolicy } from '../../src/schedules/index.ts';

const problems = (input: unknown) => (ScheduleConfigSchema.safeParse(input).error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);

const shop = { name: 'shop', urlEnv: 'SHOP_DATABASE_URL', environment: 'production' } as const;

describe('ScheduleConfigSchema', () => {
  it('fills the defaults: UTC, no targets, retention at 05:00, checklists at 09:00', () => {
    expect(ScheduleConfigSchema.parse({})).toEqual({
      timezone: 'UTC',
      targets: [],
      retention: { enabled: true, at: '05:00', dryRun: false },
      reminders: { daily: { enabled: true, at: '09:00' }, weekly: { enabled: true, day: 'monday', at: '09:00' }, monthly: { enabled: true, at: '09:00' } },
    });
  });

  it('validates the time zone with Intl and stores its canonical spelling', () => {
    expect(ScheduleConfigSchema.parse({ timezone: 'utc' }).timezone).toBe('UTC');
    expect(problems({ timezone: 'Europe/Pariss' })).toEqual(['timezone: an IANA time zone such as Europe/Paris or UTC']);
  });

  it('needs exactly one of url and urlEnv, and never echoes a URL', () => {
    const both = problems({ targets: [{ ...shop, url: 'postgres://u:hunter2@db/shop' }] });
    expect(both).toEqual(['targets.0.url: give exactly one of url and urlEnv']);
    const wrong = problems({ targets: [{ name: 'shop', url: 'mysql://u:hunter2@db/shop', environment: 'staging' }] });
    expect(wrong).toEqual(['targets.0.url: a postgres:// or postgresql:// URL']);
    expect(
      JSON.stringify(ScheduleConfigSchema.safeParse({ targets: [{ name: 'shop', url: 'mysql://u:hunter2@db', environment: 'staging' }] }).error),
    ).not.toContain('hunter2');
    expect(problems({ targets: [{ name: 'shop', environment: 'staging' }] })).toEqual(['targets.0.url: give exactly one of url and urlEnv']);
  });

  it('refuses duplicate targets, unknown keys, unsafe table patterns and 6-field or OR-ed cron', () => {
    expect(problems({ targets: [shop, shop] })).toEqual(['targets.1.name: target shop is listed twice']);
    expect(problems({ targets: [{ ...shop, enviroment: 'x' }] })[0]).toMatch(/^targets\.0: /);
    expect(problems({ targets: [{ ...shop, excludeTables: ['--file=/etc/passwd'] }] })[0]).toMatch(/^targets\.0\.excludeTables\.0: a table name/);
    expect(problems({ targets: [{ ...shop, schedules: { backups: { daily: { cron: '0 0 2 * * *' } } } }] })[0]).toMatch(/5 fields/);
    expect(problems({ targets: [{ ...shop, schedules: { backups: { daily: { cron: '0 3 1-7 * 6' } } } }] })[0]).toMatch(/ORs them/);
    expect(problems({ targets: [{ ...shop, schedules: { backups: { daily: { cron: '0 0 30 2 *' } } } }] })[0]).toMatch(/can run/);
  });

  it('lists the cross-field mistakes beside the others, not one round of fixes later', () => {
    const found = problems({
      timezone: 'Mars/Olympus',
      targets: [
        { ...shop, url: 'postgres://db/shop', excludeTables: ['a;b'], schedules: { backups: { hourly: { cron: '15 * * * *' }, odd: 5 } } },
        { name: 'shop', urlEnv: 'STAGING_URL', environment: 'staging', extra: 1 },
        17,
        { name: 'app', urlEnv: 'APP_URL', environment: 'prod' },
      ],
    });
    expect(found).toEqual(
      expect.arrayContaining([
        'timezone: an IANA time zone such as Europe/Paris or UTC',
        'targets.0.url: give exactly one of url and urlEnv',
        'targets.0.schedules.backups.hourly: "hourly" is not a default production schedule (daily, frequent), so it adds one and needs retentionClass, keepDays',
        'targets.1.name: target shop is listed twice',
      ]),
    );
    // The wrong values are reported as such, and the cross-field checks do not trip over them.
    expect(found.some((p) => p.startsWith('targets.0.excludeTables.0:'))).toBe(true);
    expect(found.some((p) => p.startsWith('targets.2:'))).toBe(true);
    expect(found.some((p) => p.startsWith('targets.3.environment:'))).toBe(true);
  });

  it('a new schedule id must name cron, retentionClass and keepDays', () => {
    expect(problems({ targets: [{ ...shop, schedules: { backups: { hourly: { cron: '15 * * * *' } } } }] })).toEqual([
      'targets.0.schedules.backups.hourly: "hourly" is not a default production schedule (daily, frequent), so it adds one and needs retentionClass, keepDays',
    ]);
  });

  it('spreads into another object schema with its refinements intact', () => {
    const File = z.object({ encryption: z.enum(['age', 'none']).optional(), ...SCHEDULE_SECTION_SHAPE }).strict();
    expect(File.safeParse({ encryption: 'none', targets: [shop, shop] }).error?.issues[0]?.message).toBe('target shop is listed twice');
    expect(File.parse({ timezone: 'Europe/Paris' }).retention.at).toBe('05:00');
  });
});

describe('resolvePolicy', () => {
  const parse = (schedules: unknown, environment = 'production') => ScheduleConfigSchema.parse({ targets: [{ ...shop, environment, schedules }] }).targets[0]!;

  it('gives production and staging their defaults', () => {
    const prod = resolvePolicy(parse(undefined));
    expect(prod.backups).toEqual(DEFAULT_POLICY.production.backups);
    expect(prod.restoreTest).toEqual({ cadence: 'monthly', at: '03:00' });
    expect(prod.preMigration).toEqual({ keepDays: 90 });
    const staging = resolvePolicy(parse(undefined, 'staging'));
    expect(staging.backups).toEqual([{ id: 'weekly', cron: '0 2 * * 0', retentionClass: 'weekly', keepDays: 14 }]);
    expect(staging.restoreTest).toEqual({ cadence: 'quarterly', at: '03:00' });
    expect(staging.preMigration).toEqual({ keepDays: 30 });
  });

  it('changes only the fields given, removes with enabled: false, adds new ids', () => {
    const p = resolvePolicy(
      parse({
        backups: { daily: { cron: '30 1 * * *' }, frequent: { enabled: false }, hourly: { cron: '15 * * * *', retentionClass: 'frequent', keepDays: 2 } },
        restoreTest: { at: '04:00' },
        preMigration: { keepDays: 180 },
      }),
    );
    expect(p.backups).toEqual([
      { id: 'daily', cron: '30 1 * * *', retentionClass: 'daily', keepDays: 30 },
      { id: 'hourly', cron: '15 * * * *', retentionClass: 'frequent', keepDays: 2 },
    ]);
    expect(p.restoreTest).toEqual({ cadence: 'monthly', at: '04:00' });
    expect(p.preMigration.keepDays).toBe(180);
    expect(resolvePolicy(parse({ restoreTest: { enabled: false } })).restoreTest).toBeNull();
  });
});
