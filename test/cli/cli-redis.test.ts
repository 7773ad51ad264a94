import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { retentionRunsFromQueue } from '../../src/checklists/retention-runs.ts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cli } from '../support/app-backups.ts';

const WATCH = pathToFileURL(resolve('test/support/watch-connects.mjs')).href;

/**
 * The CLI asks Redis only when REDIS_URL is set (the default, 127.0.0.1:6379, may be another application's), and
 * then only reads the bot's queues.
 */
describe('the CLI and Redis', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    // A name without "redis" in it: the output is searched for that word.
    dir = await mkdtemp(join(tmpdir(), 'pgbb-cli-queue-'));
    env = { DATABASE_URL: 'postgres://pgbb@127.0.0.1:1/shop', TARGET_NAME: 'shop', BACKUP_DIR: join(dir, 'backups') };
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('without REDIS_URL, check and retention connect to no Redis, and say so in one line', async () => {
    const connects = join(dir, 'connects.log');
    const watched = { ...env, NODE_OPTIONS: `--import=${WATCH}`, PGBB_TEST_CONNECTS: connects };
    const check = await cli(['check'], watched);
    expect(check.stderr).toBe(
      "no REDIS_URL: judging from storage alone; the last backup run and running jobs are not checked (set REDIS_URL to the bot's Redis)",
    );
    // BACKUP_DIR was never written: that is said first, and every condition after it (here the target is "never backed up").
    expect(check.stdout.split('\n').slice(0, 2)).toEqual([
      `CRITICAL storage: BACKUP_DIR ${join(dir, 'backups')} does not exist: no backup was ever written there. If the backups are elsewhere, set BACKUP_DIR to that directory.`,
      expect.stringMatching(/^CRITICAL shop stale/),
    ]);
    expect(check.exitCode).toBe(2);
    expect(check.stdout).not.toMatch(/redis/i);
    const refused = await cli(['retention'], watched);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^Refusing to delete: no REDIS_URL, so the restore tests running now cannot be seen; set REDIS_URL to the bot's Redis\. /);
    const dry = await cli(['retention', '--dry-run'], watched);
    expect(dry.exitCode).toBe(0);
    expect(dry.stderr).toBe('no REDIS_URL: restore tests and backups running now are unknown, so a real run would refuse.');
    expect(dry.stdout).toMatch(/^Retention on local:.* \(dry run, nothing deleted\)/);
    // The watch works (a run with REDIS_URL records its connection), and saw nothing of the runs above.
    expect(await readFile(connects, 'utf8').catch(() => '')).toBe('');
    const port = new URL(inject('redisUrl')).port;
    await cli(['check'], { ...watched, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: `{watch-${randomUUID().slice(0, 8)}}` });
    expect(await readFile(connects, 'utf8')).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port}$`, 'm'));
  });

  it('with REDIS_URL, check and retention read the queues and write no queue keys (retention its own last run)', async () => {
    const prefix = `{cli-redis-${randomUUID().slice(0, 8)}}`;
    const withRedis = { ...env, REDIS_URL: inject('redisUrl'), QUEUE_PREFIX: prefix };
    // A prefix no bot has used: the runs cannot be judged, which is said first, and UNKNOWN unless something is
    // CRITICAL (here BACKUP_DIR was never written: CRITICAL) (QA: a wrong QUEUE_PREFIX read as "OK").
    const check = await cli(['check'], withRedis);
    expect(check.stderr).toBe('');
    expect(check.stdout.split('\n')[1]).toBe(
      `UNKNOWN redis: the Redis at REDIS_URL holds nothing of a bot under QUEUE_PREFIX ${prefix} (no queue, no schedule, no run recorded), so the last backup runs cannot be judged; set QUEUE_PREFIX to the bot's`,
    );
    expect(check.exitCode).toBe(2);
    const retention = await cli(['retention'], withRedis);
    expect(retention.stderr).toBe('');
    expect(retention.exitCode).toBe(0);
    const redis = new Redis(inject('redisUrl'));
    try {
      // The run log's first sighting of the target is health's own state; BullMQ's `meta` hashes are not. The run
      // itself is kept for the weekly checklist (QA: "no retention run recorded" right after a real CLI run).
      expect((await redis.keys(`${prefix}*`)).sort()).toEqual([`${prefix}:cli-retention:last`, `${prefix}:first-seen:shop`]);
      const queue = new Queue('retention', { connection: redis, prefix });
      const seen = await retentionRunsFromQueue(queue, { redis, prefix }).last(new Date());
      await queue.close();
      expect(seen).toMatchObject({
        ok: true,
        dryRun: false,
        said: "deleted 0, cleaned 0 unfinished, kept 0 past the deadline (the CLI's `retention`)",
        problem: null,
      });
      // Once a bot has used the prefix (its backup queue's meta), nothing of that is said.
      await redis.hset(`${prefix}:backup:meta`, 'version', 'bullmq:5');
      expect((await cli(['check'], withRedis)).stdout).not.toMatch(/redis/i);
    } finally {
      redis.disconnect();
    }
  });
});
