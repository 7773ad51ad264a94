import pg_ from 'pg';
import { Redis } from 'ioredis';
import { loadConfig } from '../../../src/config.ts';
import type { Deps } from '../../../src/deps.ts';
import { holdForCli } from '../../../src/jobs/cli-readers.ts';
import { createQueues } from '../../../src/jobs/queues.ts';
import { createLogger } from '../../../src/logger.ts';
import { dropLeftovers } from '../../../src/workers/scratch-leftovers.ts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { createDatabase, dropLeftoverScratchDatabases, runRestoreTest, scratchName, type RestoreTestOptions } from '../../../src/postgres/restore/index.ts';
import { runBackup } from '../../../src/postgres/backup/index.ts';
import type { Manifest } from '../../../src/storage/index.ts';
import { createTestDatabase, runSql } from '../../support/databases.ts';
import { allCmdlines, backupOptions, silentLog, tempStorage, withClient } from '../../support/postgres-helpers.ts';
import { databaseExists, failure } from './restore-helpers.ts';

const { Client } = pg_;

/** A trigger on a partitioned table: what a single `pg_restore -j` pass of a pipe-written archive gets wrong. */
const PARTITION_TRIGGER = `
  CREATE TABLE log (id bigint);
  CREATE TABLE events (id bigint, k int) PARTITION BY LIST (k);
  CREATE TABLE events_0 PARTITION OF events FOR VALUES IN (0);
  CREATE TABLE events_1 PARTITION OF events FOR VALUES IN (1);
  CREATE TABLE events_2 PARTITION OF events FOR VALUES IN (2);
  INSERT INTO events SELECT i, i % 3 FROM generate_series(1, 3000) i;
  CREATE FUNCTION log_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.log VALUES (NEW.id); RETURN NEW; END $$;
  CREATE TRIGGER events_log AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION log_event();
  -- Enough rows that a restore is still running when the test cancels it.
  CREATE TABLE bulk AS SELECT i, md5(i::text) AS a, md5((i * 7)::text) AS b FROM generate_series(1, 600000) i;
  CREATE INDEX ON bulk (a);`;

describe('runRestoreTest lifecycle', () => {
  let source: Awaited<ReturnType<typeof createTestDatabase>>;
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let manifest: Manifest;
  let n = 0;
  const options = (extra: Partial<RestoreTestOptions> = {}): RestoreTestOptions => ({
    manifest,
    storage: store.storage,
    serverUrl: inject('pgUrl'),
    scratchKey: `job:lifecycle-${process.pid}-${++n}`,
    log: silentLog,
    ...extra,
  });

  beforeAll(async () => {
    source = await createTestDatabase(inject('pgUrl'), 'rtlife');
    await runSql(source.url, PARTITION_TRIGGER);
    store = await tempStorage();
    manifest = await runBackup(backupOptions(source.url, store.storage));
  });
  afterAll(async () => {
    await source?.drop();
    await store?.cleanup();
  });

  it('restores a trigger on a partitioned table after the data, so it never fires during the restore', async () => {
    const outcome = await runRestoreTest(options({ jobs: 2 }));
    // A single -j pass creates the trigger before the partitions' COPY: "public.log: 0 rows expected, 3,000 restored".
    expect(outcome.problems).toEqual([]);
    expect(outcome.restoreMethod).toEqual({ input: 'file', jobs: 2 });
  });

  it('drops the scratch database and stops pg_restore when canceled mid-restore', async () => {
    const controller = new AbortController();
    const o = options({ signal: controller.signal });
    const name = scratchName(o.scratchKey);
    const phases: string[] = [];
    o.onProgress = (p) => {
      phases.push(p.phase);
      if (p.phase !== 'restoring') return;
      // Cancel once pg_restore is connected to the scratch database and working.
      const poll = setInterval(() => {
        void withClient(inject('pgUrl'), (c) => c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name])).then((r) => {
          if ((r.rows[0]?.n ?? 0) > 0 && !controller.signal.aborted) {
            clearInterval(poll);
            controller.abort();
          }
        });
      }, 20);
      controller.signal.addEventListener('abort', () => clearInterval(poll));
    };
    const err = await failure(runRestoreTest(o));
    expect(err.code).toBe('canceled');
    expect(err.userMessage).toContain(name);
    expect(phases).toContain('dropping');
    expect(await databaseExists(inject('pgUrl'), name)).toBe(false);
    // No pg_restore (nor a forked worker of it) is left running against the dropped database.
    await new Promise((r) => setTimeout(r, 300));
    expect((await allCmdlines()).filter((c) => c.includes(name))).toEqual([]);
  });

  it('a cancel while pg_amcheck runs is a cancel, not "amcheck NOT run" in a passing verdict (QA)', async () => {
    const controller = new AbortController();
    const o = options({ signal: controller.signal, verify: 'full' });
    const name = scratchName(o.scratchKey);
    const phases: string[] = [];
    o.onProgress = (p) => {
      phases.push(p.detail ? `${p.phase}: ${p.detail}` : p.phase);
      // pg_amcheck starts under a signal already aborted: execa kills it at once, as Ctrl-C did in the QA run.
      if (p.detail?.startsWith('pg_amcheck')) controller.abort();
    };
    const err = await failure(runRestoreTest(o));
    expect(phases).toContain('verifying: pg_amcheck --heapallindexed');
    expect(err.code).toBe('canceled');
    expect(err.userMessage).toBe(`The restore test of ${manifest.backupId} was canceled; its scratch database ${name} was dropped.`);
    expect(await databaseExists(inject('pgUrl'), name)).toBe(false);
  });

  it('throws a sentence, not a verdict, when the server is unreachable', async () => {
    const err = await failure(runRestoreTest(options({ serverUrl: 'postgres://postgres@127.0.0.1:1/postgres' })));
    expect(err.code).toBe('pg_unreachable');
    expect(err.userMessage).toContain('127.0.0.1:1');
  });

  it('throws a sentence naming CREATEDB when the role may not create databases', async () => {
    const role = `pgbb_nocreate_${process.pid}`;
    await runSql(inject('pgUrl'), `CREATE ROLE ${role} LOGIN NOCREATEDB`);
    try {
      const u = new URL(inject('pgUrl'));
      u.username = role;
      const err = await failure(runRestoreTest(options({ serverUrl: u.toString() })));
      expect(err.code).toBe('pg_auth_failed');
      expect(err.userMessage).toContain('CREATEDB');
    } finally {
      await runSql(inject('pgUrl'), `DROP ROLE ${role}`);
    }
  });
});

describe('dropLeftoverScratchDatabases', () => {
  // Its own server: on the shared one it would drop other test files' scratch databases mid-test.
  let pg: EphemeralPostgres;
  beforeAll(async () => {
    pg = await startEphemeralPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it('drops scratch databases a crash left behind, keeps those of running jobs and anything not ours', async () => {
    const leftover = scratchName('job:crashed');
    const running = scratchName('job:running');
    await createDatabase(pg.url, leftover);
    await createDatabase(pg.url, running);
    await createDatabase(pg.url, 'pgbb_rt_not_a_scratch');
    // A session still connected to the leftover (a killed worker's pg_restore) does not stop the drop.
    const u = new URL(pg.url);
    u.pathname = `/${leftover}`;
    const stray = new Client({ connectionString: u.toString() });
    stray.on('error', () => undefined); // the forced drop terminates it
    await stray.connect();
    try {
      expect(await dropLeftoverScratchDatabases(pg.url, new Set([running]))).toEqual([leftover]);
    } finally {
      await stray.end().catch(() => undefined);
    }
    expect(await databaseExists(pg.url, leftover)).toBe(false);
    expect(await databaseExists(pg.url, running)).toBe(true);
    expect(await databaseExists(pg.url, 'pgbb_rt_not_a_scratch')).toBe(true);
    expect(await dropLeftoverScratchDatabases(pg.url, new Set())).toEqual([running]);
  });

  it('a worker that starts keeps the scratch database of a CLI restore test running now, held in Redis (CI: dropped under it)', async () => {
    const prefix = `{lo-${Date.now().toString(36)}}`;
    const redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    const queues = createQueues(redis, prefix);
    try {
      const cli = scratchName(`cli:${Date.now()}`, prefix);
      const crashed = scratchName('job:crashed-too', prefix);
      await createDatabase(pg.url, cli);
      await createDatabase(pg.url, crashed);
      const hold = await holdForCli(redis, prefix, 'shop-20261207T000000Z', undefined, cli);
      const config = loadConfig({ DATABASE_URL: pg.url, QUEUE_PREFIX: prefix }, 'offline');
      const deps = { config, queues, workerRedis: redis, log: createLogger({ level: 'silent' }) } as unknown as Deps;
      await dropLeftovers(deps);
      expect(await databaseExists(pg.url, cli)).toBe(true);
      expect(await databaseExists(pg.url, crashed)).toBe(false);
      // Released (the CLI's test ended, or was killed and its hold ran out): a leftover like any other.
      await hold.release();
      await dropLeftovers(deps);
      expect(await databaseExists(pg.url, cli)).toBe(false);
    } finally {
      await queues.close();
      redis.disconnect();
    }
  });

  it("never drops another deployment's scratch databases (another queue prefix on the same server)", async () => {
    const theirs = scratchName('job:theirs', '{other}');
    await createDatabase(pg.url, theirs);
    expect(await dropLeftoverScratchDatabases(pg.url, new Set(), '{pgbb}')).toEqual([]);
    expect(await databaseExists(pg.url, theirs)).toBe(true);
    expect(await dropLeftoverScratchDatabases(pg.url, new Set(), '{other}')).toEqual([theirs]);
  });
});
