import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type LockWait, watchLockWaits } from '../../src/postgres/backup/lock-wait.ts';
import { pgClientConfig } from '../../src/postgres/connection.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';

type P = { phase: string; rawBytes?: number; waiting?: string };

describe('watchLockWaits', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase(inject('pgUrl'), 'lockwatch');
    await runSql(db.url, `CREATE TABLE "Audit Log" (id int)`);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('keeps the wait it saw for the verdict when a later look comes after the give-up and finds none', async () => {
    const locker = new pg.Client({ connectionString: db.url, application_name: 'migrate-7' });
    // The "snapshot" session: the bot's application name, as the backup's own sessions have.
    const waiter = new pg.Client(pgClientConfig(db.url));
    await Promise.all([locker.connect(), waiter.connect()]);
    const emitted: P[] = [];
    let watch: ReturnType<typeof watchLockWaits<P>> | undefined;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE "Audit Log" IN ACCESS EXCLUSIVE MODE');
      const waiterPid = (await waiter.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid ?? null;
      await waiter.query('BEGIN');
      const blocked = waiter.query('LOCK TABLE "Audit Log" IN ACCESS SHARE MODE').catch((err: Error) => err);
      watch = watchLockWaits<P>({ url: db.url, snapshotPid: () => waiterPid, everyMs: 100, emit: (p) => emitted.push(p), log: pino({ level: 'silent' }) });
      watch.progress({ phase: 'dumping', rawBytes: 0 });
      await until(() => emitted.some((p) => p.waiting));
      const seen = watch.last() as LockWait;
      expect(seen.what).toBe('public."Audit Log"');
      expect(seen.holder?.app).toBe('migrate-7');

      // The wait ends without the dump moving, as when pg_dump gives up: the looks after it find no wait.
      await locker.query('SELECT pg_cancel_backend($1)', [waiterPid]);
      expect(String(await blocked)).toMatch(/canceling statement due to user request/);
      // Ten intervals: several looks, each finding no wait now.
      await new Promise((r) => setTimeout(r, 1000));
      expect(watch.last()).toEqual(seen);

      // The dump moving again forgets it: a later give-up would be another wait's.
      watch.progress({ phase: 'dumping', rawBytes: 4096 });
      expect(watch.last()).toBeNull();
    } finally {
      watch?.stop();
      await Promise.all([locker.end(), waiter.end()]);
    }
  });
});

async function until(ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
