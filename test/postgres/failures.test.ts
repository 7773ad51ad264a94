import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { BotError } from '../../src/errors.ts';
import { runBackup } from '../../src/postgres/backup/index.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';
import { backupOptions, childProcesses, hookedStorage, runsTool, tempStorage } from '../support/postgres-helpers.ts';
import { CLOSED_PORT } from '../support/closed-port.ts';

async function failure(p: Promise<unknown>): Promise<BotError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BotError);
    return err as BotError;
  }
  throw new Error('the backup succeeded but was expected to fail');
}

describe('runBackup failures', () => {
  let store: Awaited<ReturnType<typeof tempStorage>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;

  beforeAll(async () => {
    store = await tempStorage();
    db = await createTestDatabase(inject('pgUrl'), 'fail');
    // Enough data that pg_dump is still running when its first compressed bytes arrive.
    await runSql(db.url, `CREATE TABLE big AS SELECT i, md5(i::text) AS a, md5((i * 3)::text) AS b FROM generate_series(1, 300000) i`);
  });
  afterAll(async () => {
    await db?.drop();
    await store?.cleanup();
  });

  /** Nothing may be left: not listed, no directory, no partial file. */
  async function expectNothingLeft(): Promise<void> {
    expect(await store.storage.list()).toEqual([]);
    expect(await readdir(join(store.root, 'app')).catch(() => [])).toEqual([]);
  }

  it('says so in one sentence when the server is unreachable', async () => {
    const url = `postgres://postgres@127.0.0.1:${CLOSED_PORT}/postgres`;
    const err = await failure(runBackup(backupOptions(url, store.storage)));
    expect(err.code).toBe('pg_unreachable');
    expect(err.userMessage).toMatch(/^Could not connect to the database server at 127\.0\.0\.1:\d+ \(connection refused\); check/);
    await expectNothingLeft();
  });

  it('names the database that does not exist', async () => {
    const url = new URL(inject('pgUrl'));
    url.pathname = '/no_such_db_here';
    const err = await failure(runBackup(backupOptions(url.toString(), store.storage)));
    expect(err.code).toBe('pg_database_missing');
    expect(err.userMessage).toContain('"no_such_db_here" does not exist');
    await expectNothingLeft();
  });

  it('is canceled through the AbortSignal mid-dump and leaves nothing behind', async () => {
    const abort = new AbortController();
    let sawDump = false;
    const storage = hookedStorage(store.storage, {
      onFirstChunk: async () => {
        sawDump = (await childProcesses()).some((p) => runsTool(p, 'pg_dump'));
        abort.abort();
      },
    });
    const err = await failure(runBackup(backupOptions(db.url, storage, { signal: abort.signal })));
    expect(sawDump).toBe(true);
    expect(err.code).toBe('canceled');
    await expectNothingLeft();
    expect((await childProcesses()).filter((p) => /pg_dump|zstd/.test(p.cmdline))).toEqual([]);
  });

  it('fails when pg_dump is killed, even though zstd ends a well-formed stream', async () => {
    let killed = false;
    const storage = hookedStorage(store.storage, {
      // pg_dump itself, not pg_dumpall beside it (whose failure never fails a backup: globals.ts).
      onFirstChunk: async () => {
        const dump = (await childProcesses()).find((p) => runsTool(p, 'pg_dump'));
        if (dump) process.kill(dump.pid, 'SIGKILL');
        killed = dump !== undefined;
      },
    });
    const err = await failure(runBackup(backupOptions(db.url, storage)));
    expect(killed).toBe(true);
    expect(err.code).toBe('pg_dump_failed');
    expect(err.userMessage).toBe('pg_dump failed: killed by SIGKILL.');
    await expectNothingLeft();
  });

  it('reports a full disk as such', async () => {
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
    const err = await failure(runBackup(backupOptions(db.url, hookedStorage(store.storage, { failWith: enospc }))));
    expect(err.code).toBe('disk_full');
    expect(err.userMessage).toMatch(/^The backup disk is full \(local:.*\); free space/);
    await expectNothingLeft();
  });

  it('gives up on a table lock after lockWaitTimeoutMs instead of stalling behind an ALTER TABLE', async () => {
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query('BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const err = await failure(runBackup(backupOptions(db.url, store.storage, { lockWaitTimeoutMs: 300 })));
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(err.code).toBe('pg_dump_failed');
      expect(err.userMessage).toMatch(/gave up waiting for a table lock/);
      await expectNothingLeft();
    } finally {
      await locker.end();
    }
  });

  it('while it waits for a lock, says on which table and who holds it; giving up, the verdict names both', async () => {
    await runSql(
      db.url,
      `CREATE SCHEMA "Billing"; CREATE TABLE "Billing"."Audit Log" (id int PRIMARY KEY, note text); INSERT INTO "Billing"."Audit Log" VALUES (1, 'x')`,
    );
    const locker = new pg.Client({ connectionString: db.url, application_name: 'migrate-42' });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE "Billing"."Audit Log" IN ACCESS EXCLUSIVE MODE');
      const pid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      const waits: string[] = [];
      const options = backupOptions(db.url, store.storage, { lockWaitTimeoutMs: 4000, lockWatchMs: 250 });
      const err = await failure(runBackup({ ...options, onProgress: (p) => (p.waiting ? waits.push(p.waiting) : undefined) }));
      const holder = `held by pid ${pid} \\(user \\w+, migrate-42, idle in transaction for [\\d.]+ s: SELECT pg_backend_pid …\\)`;
      expect(waits.length).toBeGreaterThan(0);
      expect(waits.at(-1)).toMatch(new RegExp(`^waiting [\\d.]+ s for a lock on "Billing"\\."Audit Log", ${holder}$`));
      expect(err.userMessage).toMatch(
        new RegExp(
          `^The backup gave up waiting for a table lock on "Billing"\\."Audit Log", ${holder}; run it again once that has finished \\(or end that session: \`SELECT pg_terminate_backend\\(${pid}\\)\`\\)\\.$`,
        ),
      );
      await expectNothingLeft();
    } finally {
      await locker.end();
      await runSql(db.url, 'DROP SCHEMA "Billing" CASCADE');
    }
  });

  it('gives a backup started in the same second as another a suffixed id, leaving the other untouched', async () => {
    const opts = backupOptions(db.url, store.storage);
    await store.storage.beginBackup('app', opts.backupId);
    const manifest = await runBackup(opts);
    const base = opts.backupId.replace(/(T\d{6}Z)-\d+$/, '$1');
    expect(manifest.backupId).toMatch(new RegExp(`^${base}-\\d+$`));
    expect(manifest.backupId).not.toBe(opts.backupId);
    expect((await readdir(join(store.root, 'app'))).sort()).toEqual([opts.backupId, manifest.backupId].sort());
    expect(await readdir(join(store.root, 'app', opts.backupId))).toEqual([]);
    await store.storage.discardUnfinished('app', opts.backupId);
    await store.storage.deleteBackup('app', manifest.backupId);
  });
});
