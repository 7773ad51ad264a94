import { describe, expect, it } from 'vitest';
import { findTarget, ignoredDatabaseUrl, loadConfig, targetNameFromUrl } from '../src/config.ts';
import { walVerbEnv } from '../src/config-env.ts';
import { BotError } from '../src/errors.ts';

const good = {
  SLACK_BOT_TOKEN: 'xoxb-test-token',
  SLACK_SIGNING_SECRET: 'secret-value-123',
  DATABASE_URL: 'postgres://backup:hunter2@db.internal:5432/Pagila_Prod',
  BACKUP_ENCRYPTION_RECIPIENT: 'age1vnjlceecrz4x0hj6agpan0yfrvnr33uz9lyx0hqfmzjxlye8ev7qa7grrh',
};

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig(good);
    expect(c.port).toBe(3000);
    expect(c.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(c.slack.channel).toBe('#incidents');
    expect(c.slack.apiUrl).toBe('https://slack.com/api/');
    expect(c.backupDir).toBe('./backups');
    expect(c.pagerduty.eventsUrl).toBe('https://events.pagerduty.com/v2/enqueue');
    expect(c.targets).toEqual([
      {
        name: 'pagila_prod',
        url: good.DATABASE_URL,
        environment: 'production',
        excludeTables: [],
        schemas: [],
        policy: {
          name: 'pagila_prod',
          environment: 'production',
          backups: [
            { id: 'daily', cron: '0 2 * * *', retentionClass: 'daily', keepDays: 30 },
            { id: 'frequent', cron: '0 */6 * * *', retentionClass: 'frequent', keepDays: 7 },
          ],
          restoreTest: { cadence: 'monthly', at: '03:00' },
          preMigration: { keepDays: 90 },
        },
        verify: 'content',
      },
    ]);
    expect(c.timezone).toBe('UTC');
  });

  it('lists every problem at once and never echoes a value', () => {
    let err: unknown;
    try {
      loadConfig({ SLACK_BOT_TOKEN: 'not-a-token-hunter2', DATABASE_URL: 'mysql://u:hunter2@x/y', PORT: 'eighty', PAGERDUTY_ROUTING_KEY: 'short' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BotError);
    const msg = (err as BotError).userMessage;
    for (const name of ['SLACK_BOT_TOKEN', 'DATABASE_URL', 'PORT', 'PAGERDUTY_ROUTING_KEY', 'SLACK_SIGNING_SECRET']) expect(msg).toContain(name);
    expect(msg).not.toContain('hunter2');
  });

  it('will not start a service whose production targets have no key to encrypt to; the CLI, staging and `encryption: none` may', () => {
    const { BACKUP_ENCRYPTION_RECIPIENT: _r, ...plain } = good;
    for (const mode of ['all', 'bot', 'worker'] as const) {
      expect(() => loadConfig(plain, mode)).toThrow(
        /BACKUP_ENCRYPTION_RECIPIENT: required, or every backup of pagila_prod \(production\) would be refused: run `npx pg-backup-bot init`.*age-keygen/,
      );
    }
    expect(loadConfig(plain, 'cli').targets).toHaveLength(1);
    expect(loadConfig(good, 'all').encryption.recipients).toEqual([good.BACKUP_ENCRYPTION_RECIPIENT]);
  });

  it('refuses a BACKUP_DIR on /proc, /sys or /dev, where a backup hung for ever (QA: Node’s recursive mkdir loops under /proc)', () => {
    for (const dir of ['/proc/backups', '/sys/x', '/dev/backups']) {
      expect(() => loadConfig({ ...good, BACKUP_DIR: dir }, 'offline')).toThrow(
        'BACKUP_DIR: is on a kernel file system (/proc, /sys, /dev), where no backup can be stored: name a directory on a disk',
      );
    }
    expect(loadConfig({ ...good, BACKUP_DIR: '/procurement/backups' }, 'offline').backupDir).toBe('/procurement/backups');
  });

  it('refuses S3 settings without S3_BUCKET, and a PG_BIN_DIR that is not there (QA: both passed over without a word)', () => {
    expect(() => loadConfig({ ...good, S3_MODE: 'primary', S3_ENDPOINT: 'https://s3.example.internal' }, 'cli')).toThrow(
      'S3_BUCKET: required when S3_MODE, S3_ENDPOINT are set; without it nothing goes to S3',
    );
    expect(() => loadConfig({ ...good, S3_PREFIX: 'prod' }, 'cli')).toThrow('S3_BUCKET: required when S3_PREFIX is set');
    expect(() => loadConfig({ ...good, S3_BUCKET: 'b-1', S3_MODE: 'primary' }, 'cli')).not.toThrow();
    expect(() => loadConfig({ ...good, PG_BIN_DIR: '/usr/lib/postgresql/99/bin' }, 'cli')).toThrow(
      'PG_BIN_DIR: names a directory that does not exist: the PostgreSQL client tools (pg_dump, pg_restore, psql) are looked for there',
    );
    // Verbs that run no tool (list, fetch, retention: `offline`) still start: a recovery host with an old env file.
    expect(() => loadConfig({ ...good, PG_BIN_DIR: '/usr/lib/postgresql/99/bin' }, 'offline')).not.toThrow();
  });

  it('names a DATABASE_URL that no target of the config file reads (QA: its database was never backed up, unsaid)', () => {
    const config = { configFile: './pg-backup-bot.yml', targets: [{ name: 'main', url: 'postgres://h/main' }] } as never;
    expect(ignoredDatabaseUrl({ DATABASE_URL: 'postgres://h/app' }, config)).toBe(
      'DATABASE_URL is set, but ./pg-backup-bot.yml lists the targets (main) and none reads it: its database is not backed up. Add it there as a target (urlEnv: DATABASE_URL), or unset it.',
    );
    expect(ignoredDatabaseUrl({ DATABASE_URL: 'postgres://h/main' }, config)).toBeNull();
    expect(ignoredDatabaseUrl({}, config)).toBeNull();
    // No file: DATABASE_URL is the target.
    expect(ignoredDatabaseUrl({ DATABASE_URL: 'postgres://h/app' }, { configFile: null, targets: [] } as never)).toBeNull();
  });

  it('says what a port is when PORT or METRICS_PORT is not one (not zod’s "expected number, received NaN")', () => {
    expect(() => loadConfig({ ...good, PORT: 'abc', METRICS_PORT: '70000' })).toThrow(
      /\n {2}- PORT: a port number from 0 to 65535\n {2}- METRICS_PORT: a port number from 0 to 65535$/,
    );
    expect(loadConfig({ ...good, METRICS_PORT: '9100', METRICS_HOST: '0.0.0.0' }).metrics).toEqual({ port: 9100, host: '0.0.0.0' });
    expect(loadConfig(good).metrics).toEqual({ port: 9464, host: '127.0.0.1' });
  });

  it('requires Slack credentials for the bot but not for the CLI', () => {
    expect(() => loadConfig({ DATABASE_URL: good.DATABASE_URL }, 'all')).toThrow(/SLACK_BOT_TOKEN/);
    expect(loadConfig({ DATABASE_URL: good.DATABASE_URL }, 'cli').targets).toHaveLength(1);
    expect(() => loadConfig({}, 'cli')).toThrow(/DATABASE_URL/);
  });

  it('accepts Socket Mode without a signing secret', () => {
    const c = loadConfig({
      SLACK_BOT_TOKEN: 'xoxb-1',
      SLACK_APP_TOKEN: 'xapp-1',
      DATABASE_URL: good.DATABASE_URL,
      BACKUP_ENCRYPTION_RECIPIENT: good.BACKUP_ENCRYPTION_RECIPIENT,
    });
    expect(c.slack.appToken).toBe('xapp-1');
  });

  it('reads a Redis Cluster from REDIS_URL (seed nodes) or REDIS_CLUSTER, and requires a hash-tagged prefix there', () => {
    expect(loadConfig(good).redisCluster).toBe(false);
    const seeds = 'redis://10.0.0.5:6379,redis://10.0.0.6:6379';
    expect(loadConfig({ ...good, REDIS_URL: seeds })).toMatchObject({ redisUrl: seeds, redisCluster: true });
    expect(loadConfig({ ...good, REDIS_URL: 'rediss://u:p@10.0.0.5:6379', REDIS_CLUSTER: 'true' }).redisCluster).toBe(true);
    expect(() => loadConfig({ ...good, REDIS_URL: seeds, QUEUE_PREFIX: 'pgbb' })).toThrow(
      /QUEUE_PREFIX: must hold a hash tag such as \{pgbb\} on a Redis Cluster \(it is "pgbb"\)/,
    );
    // Without a cluster any prefix goes (one server has no slots).
    expect(loadConfig({ ...good, QUEUE_PREFIX: 'pgbb' }).queuePrefix).toBe('pgbb');
    const bad = () => loadConfig({ ...good, REDIS_URL: 'redis://u:hunter2@10.0.0.5:6379,http://10.0.0.6' });
    expect(bad).toThrow(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL, or the seed nodes of a Redis Cluster/);
    expect(bad).not.toThrow(/hunter2/);
  });

  it('refuses a PagerDuty endpoint that is not an HTTPS Events v2 URL', () => {
    expect(() => loadConfig({ ...good, PAGERDUTY_EVENTS_URL: 'http://127.0.0.1:9/v2/enqueue' })).toThrow(/PAGERDUTY_EVENTS_URL/);
    expect(() => loadConfig({ ...good, PAGERDUTY_EVENTS_URL: 'https://127.0.0.1:9/other' })).toThrow(/v2\/enqueue/);
  });
});

describe('targets', () => {
  it('derives a safe target name from the database name', () => {
    expect(targetNameFromUrl('postgres://h/My%20Shop')).toBe('my-shop');
    expect(targetNameFromUrl('postgres://h/9lives')).toBe('lives');
  });

  it('names the known targets when asked for an unknown one', () => {
    const c = loadConfig(good);
    expect(findTarget(c, undefined).name).toBe('pagila_prod');
    expect(() => findTarget(c, 'nope')).toThrow(/Known targets: pagila_prod/);
  });
});

describe('walVerbEnv (restore_command’s verbs read two variables, nothing else)', () => {
  it('reads BACKUP_DIR and the identity file as the full config does, defaults and empty values alike', () => {
    const full = loadConfig({ ...good, BACKUP_DIR: '/srv/backups', BACKUP_ENCRYPTION_IDENTITY_FILE: '/etc/pgbb/key.txt' }, 'offline');
    expect(walVerbEnv({ BACKUP_DIR: '/srv/backups', BACKUP_ENCRYPTION_IDENTITY_FILE: '/etc/pgbb/key.txt' })).toEqual({
      backupDir: full.backupDir,
      identityFile: full.encryption.identityFile,
    });
    const bare = loadConfig({ ...good, BACKUP_DIR: '', BACKUP_ENCRYPTION_IDENTITY_FILE: '' }, 'offline');
    expect(walVerbEnv({ BACKUP_DIR: '', BACKUP_ENCRYPTION_IDENTITY_FILE: '' })).toEqual({ backupDir: bare.backupDir, identityFile: undefined });
    expect(walVerbEnv({})).toEqual({ backupDir: './backups', identityFile: undefined });
  });
});
