import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createQueues, type Queues } from '../../src/jobs/queues.ts';
import { createLogger } from '../../src/logger.ts';
import type { BaseBackup } from '../../src/postgres/pitr/base-backup.ts';
import { FIRST_BASE_BACKUP_LABEL, takeFirstBaseBackups } from '../../src/workers/base-backup-jobs.ts';

/**
 * A worker starting queues a base backup of every pitr target that has none (without one nothing is recoverable to a
 * point in time), on real Redis, once however many workers start.
 */
let dir: string;
let redis: Redis;
let queues: Queues;
const prefix = `{fbb-${randomUUID().slice(0, 8)}}`;
const log = createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgbb-first-base-'));
  redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  queues = createQueues(redis, prefix);
  // `done` already has a base backup on disk.
  const id = 'done-base-20261201T010000Z';
  await mkdir(join(dir, 'backups', 'done', '_base', id), { recursive: true });
  const record: BaseBackup = {
    id,
    target: 'done',
    file: 'base.tar.zst',
    bytes: 10,
    rawBytes: 20,
    sha256: 'a'.repeat(64),
    encryption: 'none',
    startedAt: '2026-12-01T01:00:00.000Z',
    finishedAt: '2026-12-01T01:00:05.000Z',
    startLsn: '0/2000028',
    endLsn: '0/2000100',
    timeline: 1,
    pgBasebackupVersion: 'pg_basebackup (PostgreSQL) 15',
  };
  await writeFile(join(dir, 'backups', 'done', '_base', id, 'base.json'), JSON.stringify(record));
});

afterAll(async () => {
  await queues?.baseBackup.obliterate({ force: true }).catch(() => undefined);
  await queues?.close();
  redis?.disconnect();
  await rm(dir, { recursive: true, force: true });
});

describe('first base backups at worker start', () => {
  it('queues one for each pitr target without any, labelled, and none for the others; a second worker adds none', async () => {
    const file = join(dir, 'pg-backup-bot.yml');
    await writeFile(
      file,
      [
        'encryption: none',
        'targets:',
        '  - { name: fresh, urlEnv: APP_URL, environment: staging, pitr: { urlEnv: APP_URL } }',
        '  - { name: done, urlEnv: APP_URL, environment: staging, pitr: { urlEnv: APP_URL } }',
        '  - { name: plain, urlEnv: APP_URL, environment: staging }',
        '',
      ].join('\n'),
    );
    const config = loadConfig(
      {
        SLACK_BOT_TOKEN: 'xoxb-test-0000-pgbb',
        BOT_CONFIG: file,
        APP_URL: 'postgres://u@127.0.0.1:1/db',
        REDIS_URL: inject('redisUrl'),
        QUEUE_PREFIX: prefix,
        BACKUP_DIR: join(dir, 'backups'),
      },
      'worker',
    );
    const first = await takeFirstBaseBackups({ config, queues, log });
    expect(first).toHaveLength(1);
    const job = await queues.baseBackup.getJob(first[0] as string);
    expect(job?.data).toEqual({ target: 'fresh', label: FIRST_BASE_BACKUP_LABEL, requestedBy: { source: 'schedule', userName: 'first base backup at start' } });
    expect(await takeFirstBaseBackups({ config, queues, log })).toEqual([]);
    expect((await queues.baseBackup.getJobs(['waiting', 'active', 'delayed'])).map((j) => j.data.target)).toEqual(['fresh']);
  });
});
