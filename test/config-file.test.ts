import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { BotError } from '../src/errors.ts';

describe('BOT_CONFIG file', () => {
  let dir: string;
  const base = {
    SLACK_BOT_TOKEN: 'xoxb-1',
    SLACK_SIGNING_SECRET: 's',
    DATABASE_URL: 'postgres://h/shop',
    BACKUP_ENCRYPTION_RECIPIENT: 'age1vnjlceecrz4x0hj6agpan0yfrvnr33uz9lyx0hqfmzjxlye8ev7qa7grrh',
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cfg-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads smoke queries and users allowed to restore, merged with RESTORE_ALLOWED_USERS', async () => {
    const file = join(dir, 'ok.yml');
    await writeFile(
      file,
      'restoreTest:\n  jobs: 3\n  smokeQueries:\n    - name: recent orders\n      sql: select count(*) from shop.orders\nrestore:\n  allowedUsers: [U0ADMIN1]\n',
    );
    const c = loadConfig({ ...base, BOT_CONFIG: file, RESTORE_ALLOWED_USERS: 'U0ADMIN2, U0ADMIN1' });
    expect(c.restoreTest).toEqual({ smokeQueries: [{ name: 'recent orders', sql: 'select count(*) from shop.orders' }], jobs: 3 });
    expect(c.restore.allowedUsers).toEqual(['U0ADMIN1', 'U0ADMIN2']);
  });

  it('takes targets from the file: url or urlEnv, staging defaults, exclusions, schemas and the time zone', async () => {
    const file = join(dir, 'targets.yml');
    await writeFile(
      file,
      [
        'timezone: europe/paris',
        'targets:',
        '  - name: shop',
        '    urlEnv: SHOP_DATABASE_URL',
        '    environment: production',
        '    excludeTables: [public.audit_log_*]',
        '    schedules:',
        '      backups:',
        '        frequent: { enabled: false }',
        '  - name: shop-staging',
        '    url: postgres://stage-host/shop',
        '    environment: staging',
        '    schemas: [public]',
        '',
      ].join('\n'),
    );
    const { DATABASE_URL: _unused, ...noDatabaseUrl } = base;
    const c = loadConfig({ ...noDatabaseUrl, BOT_CONFIG: file, SHOP_DATABASE_URL: 'postgres://u:secret@prod-host/shop' });
    expect(c.timezone).toBe('Europe/Paris');
    expect(c.targets.map((t) => [t.name, t.url, t.environment, t.excludeTables, t.schemas])).toEqual([
      ['shop', 'postgres://u:secret@prod-host/shop', 'production', ['public.audit_log_*'], []],
      ['shop-staging', 'postgres://stage-host/shop', 'staging', [], ['public']],
    ]);
    expect(c.targets[0]?.policy.backups.map((b) => b.id)).toEqual(['daily']);
    expect(c.targets[1]?.policy).toMatchObject({
      backups: [{ id: 'weekly', retentionClass: 'weekly', keepDays: 14 }],
      restoreTest: { cadence: 'quarterly' },
      preMigration: { keepDays: 30 },
    });
  });

  it('takes a first backup at start unless the file or FIRST_BACKUP_AT_START says not to; the variable wins', async () => {
    const off = join(dir, 'first-off.yml');
    await writeFile(off, 'firstBackupAtStart: false\n');
    expect(loadConfig(base).firstBackupAtStart).toBe(true);
    expect(loadConfig({ ...base, BOT_CONFIG: off }).firstBackupAtStart).toBe(false);
    expect(loadConfig({ ...base, BOT_CONFIG: off, FIRST_BACKUP_AT_START: 'true' }).firstBackupAtStart).toBe(true);
    expect(loadConfig({ ...base, FIRST_BACKUP_AT_START: 'false' }).firstBackupAtStart).toBe(false);
    expect(() => loadConfig({ ...base, FIRST_BACKUP_AT_START: 'no' })).toThrow(/FIRST_BACKUP_AT_START/);
  });

  it('names a missing urlEnv variable without showing any URL', async () => {
    const file = join(dir, 'missing-env.yml');
    await writeFile(file, 'targets:\n  - name: shop\n    urlEnv: SHOP_DATABASE_URL\n    environment: production\n');
    const { DATABASE_URL: _unused, ...noDatabaseUrl } = base;
    expect(() => loadConfig({ ...noDatabaseUrl, BOT_CONFIG: file })).toThrow(/SHOP_DATABASE_URL: required by target shop/);
    expect(() => loadConfig({ ...noDatabaseUrl, BOT_CONFIG: file, SHOP_DATABASE_URL: 'mysql://u:hunter2@h/x' })).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining('hunter2') as unknown }),
    );
    // Offline verbs (list, fetch, restore-pitr on a new host while the source is down) never connect to it: its URL
    // need not be set. One that is set must still be a postgres URL.
    expect(loadConfig({ ...noDatabaseUrl, BOT_CONFIG: file }, 'offline').targets.map((t) => t.name)).toEqual(['shop']);
    expect(() => loadConfig({ ...noDatabaseUrl, BOT_CONFIG: file, SHOP_DATABASE_URL: 'mysql://u:hunter2@h/x' }, 'offline')).toThrow(/must be a postgres/);
  });

  it('sets how deeply restore tests check: content by default, restoreTest.verify for all, a target’s own verify first', async () => {
    expect(loadConfig(base).targets[0]?.verify).toBe('content');
    const all = join(dir, 'verify-all.yml');
    await writeFile(all, 'restoreTest:\n  verify: counts\n');
    expect(loadConfig({ ...base, BOT_CONFIG: all }).targets[0]?.verify).toBe('counts');
    const per = join(dir, 'verify-target.yml');
    await writeFile(
      per,
      'restoreTest:\n  verify: counts\ntargets:\n  - name: shop\n    url: postgres://h/shop\n    environment: production\n    verify: full\n  - name: blog\n    url: postgres://h/blog\n    environment: staging\n',
    );
    expect(loadConfig({ ...base, BOT_CONFIG: per }).targets.map((t) => [t.name, t.verify])).toEqual([
      ['shop', 'full'],
      ['blog', 'counts'],
    ]);
    const bad = join(dir, 'verify-bad.yml');
    await writeFile(bad, 'restoreTest:\n  verify: rows\n');
    expect(() => loadConfig({ ...base, BOT_CONFIG: bad })).toThrow(/verify/);
  });

  it('reads a target’s pitr section: the replication URL from its variable, the slot pgbb_<target> by default, the policy', async () => {
    const file = join(dir, 'pitr.yml');
    await writeFile(
      file,
      'targets:\n  - name: shop-eu\n    url: postgres://h/shop\n    environment: production\n    pitr: { urlEnv: SHOP_REPLICATION_URL, rpoSeconds: 60 }\n',
    );
    const c = loadConfig({ ...base, BOT_CONFIG: file, SHOP_REPLICATION_URL: 'postgres://replicator:secret@h/shop' });
    expect(c.targets[0]?.pitr).toEqual({
      url: 'postgres://replicator:secret@h/shop',
      slot: 'pgbb_shop_eu',
      walRetentionDays: 7,
      rpoSeconds: 60,
      markers: { everySeconds: 60 },
      baseBackup: { enabled: true, cron: '0 1 * * 0', maxAgeHours: 192, afterBreak: true },
    });
    let message = '';
    try {
      loadConfig({ ...base, BOT_CONFIG: file });
    } catch (err) {
      message = (err as BotError).userMessage;
    }
    expect(message).toContain('SHOP_REPLICATION_URL: required by target shop-eu');
    expect(message).toContain('(pitr.urlEnv)');
    expect(message).not.toContain('secret');
  });

  it('reads the drift section into the data-drift thresholds: 50 %, 1,000 rows, 10× and a warning by default', async () => {
    const drift = (c: ReturnType<typeof loadConfig>) => {
      const t = c.health.thresholds;
      return [t.driftLossRatio, t.driftMinRows, t.driftGrowthFactor, t.driftPages];
    };
    expect(drift(loadConfig(base))).toEqual([0.5, 1000, 10, false]);
    const file = join(dir, 'drift.yml');
    await writeFile(file, 'drift:\n  lossPercent: 20\n  minRows: 10\n  growthFactor: 3\n  page: true\n');
    expect(drift(loadConfig({ ...base, BOT_CONFIG: file }))).toEqual([0.2, 10, 3, true]);
    // Only what is set changes; the rest keeps its default.
    await writeFile(file, 'drift:\n  page: true\n');
    expect(drift(loadConfig({ ...base, BOT_CONFIG: file }))).toEqual([0.5, 1000, 10, true]);
    await writeFile(file, 'drift:\n  lossPercent: 150\n  growthFactor: 0.5\n');
    expect(() => loadConfig({ ...base, BOT_CONFIG: file })).toThrow(/drift\.yml line 2, drift\.lossPercent[\s\S]*drift\.yml line 3, drift\.growthFactor/);
  });

  it('defaults to nobody allowed to restore into an existing database', () => {
    expect(loadConfig(base).restore.allowedUsers).toEqual([]);
  });

  it('names the line and the key of every mistake', async () => {
    const file = join(dir, 'bad.yml');
    await writeFile(file, 'restoreTest:\n  jobs: zero\n  smokeQueries:\n    - name: x\nrestor:\n  allowedUsers: []\n');
    let err: unknown;
    try {
      loadConfig({ ...base, BOT_CONFIG: file });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BotError);
    const msg = (err as BotError).userMessage;
    expect(msg).toMatch(/bad\.yml line 2, restoreTest\.jobs/);
    expect(msg).toMatch(/bad\.yml line 4, restoreTest\.smokeQueries\.0\.sql/);
    // An unknown key is named where it is typed, once.
    expect(msg).toContain('bad.yml line 5, restor: unknown key');
    // The file's targets are unknown when it has mistakes: DATABASE_URL is not asked for in their place.
    const { DATABASE_URL: _none, ...noUrl } = base;
    await writeFile(file, 'targets:\n  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n    encryption: none\n');
    const targetTypo = (() => {
      try {
        loadConfig({ ...noUrl, BOT_CONFIG: file, SHOP_URL: 'postgres://h/shop' });
      } catch (e) {
        return (e as BotError).userMessage;
      }
      return '';
    })();
    expect(targetTypo).toContain('bad.yml line 5, targets.0.encryption: unknown key');
    expect(targetTypo).not.toContain('DATABASE_URL');
    // A misspelt `environment`: the key it lacks said as missing, not as an invalid value (QA).
    await writeFile(file, 'targets:\n  - name: shop\n    urlEnv: SHOP_URL\n    enviroment: production\n');
    let missing = '';
    try {
      loadConfig({ ...noUrl, BOT_CONFIG: file, SHOP_URL: 'postgres://h/shop' });
    } catch (e) {
      missing = (e as BotError).userMessage;
    }
    expect(missing).toContain('targets.0.environment: missing: production or staging');
    expect(missing).toContain('targets.0.enviroment: unknown key');
  });

  it('names a misspelt key nested in a mapping by its own line, not the line where the mapping starts', async () => {
    const file = join(dir, 'typo.yml');
    await writeFile(
      file,
      "timezone: UTC\nretention:\n  at: '05:00'\n  dryrun: true\ntargets:\n  - name: shop\n    urlEnv: SHOP_URL\n    environment: production\n    schedules:\n      backups:\n        frequent:\n          enabeld: false\n",
    );
    const msg = (() => {
      try {
        loadConfig({ ...base, BOT_CONFIG: file });
      } catch (e) {
        return (e as BotError).userMessage;
      }
      return '';
    })();
    expect(msg.split('\n')).toEqual([
      'pg-backup-bot cannot start; fix these settings (environment variables and the config file):',
      `  - ${file} line 4, retention.dryrun: unknown key`,
      `  - ${file} line 12, targets.0.schedules.backups.frequent.enabeld: unknown key`,
    ]);
  });

  it('reports YAML syntax errors with their line', async () => {
    const file = join(dir, 'syntax.yml');
    await writeFile(file, 'restore:\n  allowedUsers: [U1\n');
    expect(() => loadConfig({ ...base, BOT_CONFIG: file })).toThrow(/syntax\.yml line \d/);
  });
});
