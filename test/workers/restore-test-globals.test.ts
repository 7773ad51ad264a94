import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cliRestoreTest } from '../../src/cli/restore-test-cli.ts';
import type { Config } from '../../src/config.ts';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { runBackup } from '../../src/postgres/backup/index.ts';
import type { Manifest } from '../../src/storage/index.ts';
import { restoreTestProcessor } from '../../src/workers/restore-test-worker.ts';
import { type AppDatabase, createAppDatabase } from '../support/app-database.ts';
import { backupOptions, withClient } from '../support/postgres-helpers.ts';
import { requestedBy, startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * Issue 14 item 6: a restore test on a server of its own (RESTORE_TEST_DATABASE_URL on another host:port than the
 * target's) applies the backup's globals there first, so the role a policy names exists; when the bot's role there
 * cannot create roles, the test fails and its problem names the missing role, not the URL's user.
 */
let kit: WorkerKit;
let app: AppDatabase;
let spare: EphemeralPostgres;
let backup: Manifest;
/** A login role on the spare server with CREATEDB only: it can make scratch databases, not roles. */
const BOT = 'rt_bot_createdb_only';

const quote = (ident: string) => `"${ident.replace(/"/g, '""')}"`;
const roleOnSpare = async (role: string) =>
  withClient(spare.url, async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount === 1);
const dropOnSpare = (role: string) => withClient(spare.url, (c) => c.query(`DROP ROLE IF EXISTS ${quote(role)}`));

beforeAll(async () => {
  spare = await startEphemeralPostgres();
  app = await createAppDatabase(inject('pgUrl'), 'rtg');
  // A policy naming the application's role: pg_restore --no-owner --no-acl still restores it, so the role must exist.
  await withClient(app.url, (c) => c.query(`CREATE POLICY "owner_reads" ON billing."Invoice" FOR SELECT TO ${quote(app.role)} USING (true)`));
  await withClient(spare.url, (c) => c.query(`CREATE ROLE ${BOT} LOGIN CREATEDB`));
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), databaseUrl: app.url });
  const target = kit.config.targets[0];
  if (!target) throw new Error('the kit has no target');
  backup = await runBackup(backupOptions(app.url, kit.storage, { target, backupId: 'shop-20261203T020000Z' }));
  expect(backup.globals.included).toBe(true);
}, 120_000);

afterAll(async () => {
  await kit?.stop();
  await app?.drop();
  await spare?.stop();
});

/** The worker's config with the restore-test server at `url`. */
const onServer = (url: string): Config => ({ ...kit.config, restoreTest: { ...kit.config.restoreTest, serverUrl: url } });
const run = (url: string, jobId: string) =>
  kit.runJob(
    restoreTestProcessor({ config: onServer(url), storage: kit.storage, notifier: kit.notifier, escalation: kit.escalation, log: kit.log }),
    { target: 'shop', requestedBy, backupId: backup.backupId },
    { jobId },
  );
const label = () => `127.0.0.1:${spare.port}`;

describe('a restore test on a second, empty server', () => {
  it('applies the backup’s globals there first and passes; the role the policy names now exists there', async () => {
    await dropOnSpare(app.role);
    expect(await roleOnSpare(app.role)).toBe(false);
    const job = await run(spare.url, 'rtg-globals');
    expect(job.failedReason).toBeUndefined();
    expect(job.returnvalue).toEqual({ passed: true });
    expect(await roleOnSpare(app.role)).toBe(true);
    const record = (await kit.storage.listRecords('restore-test', 'shop')).find((r) => r.jobId === 'rtg-globals');
    expect(record).toMatchObject({ passed: true, problems: [] });
    // Globals are the cluster's: the shared test server's other roles come along too; postgres existed.
    expect(record?.notes?.[0]).toMatch(new RegExp(`^Roles on ${label()}: kept [^;]*\\bpostgres\\b[^;]*; created [^.]*\\b${app.role}\\b`));
    const msg = kit.messageAbout('rtg-globals');
    expect(msg?.text).toMatch(new RegExp(`^Restore test of ${backup.backupId} passed in `));
    expect(JSON.stringify(msg?.blocks)).toMatch(new RegExp(`Roles on ${label()}: kept [^;]*\\bpostgres\\b`));
  }, 120_000);

  it('when the bot’s role there cannot create roles, fails and names the missing role, not the URL’s user', async () => {
    await dropOnSpare(app.role);
    const asBot = new URL(spare.url);
    asBot.username = BOT;
    const job = await run(asBot.toString(), 'rtg-no-createrole');
    const problem = `The backup's objects name the role "${app.role}", which does not exist on the restore-test server ${label()}; give the bot's role there CREATEROLE so it can apply the backup's globals, or create the role.`;
    // A test that ran and failed (a verdict, a record), not one that "could not run".
    expect(job.failedReason).toBe(`restore test failed: ${problem}`);
    expect(job.failedReason).not.toMatch(/user name in the target's URL/);
    expect(kit.messageAbout('rtg-no-createrole')?.text).toBe(`Restore test of ${backup.backupId} FAILED: ${problem}`);
    const record = (await kit.storage.listRecords('restore-test', 'shop')).find((r) => r.jobId === 'rtg-no-createrole');
    expect(record).toMatchObject({ passed: false, problems: [problem], dropped: true });
    // The roles it could not create are said too, with PostgreSQL's reason (the roles the test above created are kept).
    expect(record?.notes?.[0]).toMatch(
      new RegExp(`^Roles on ${label()}: kept [^;]*\\bpostgres\\b[^;]*; created none\\. .*role ${app.role}: .*permission denied to create role`),
    );
    expect(await roleOnSpare(app.role)).toBe(false);
  }, 120_000);

  it('a role the connecting URL names that does not exist is still the URL’s user: the test could not run', async () => {
    const nobody = new URL(spare.url);
    nobody.username = 'no_such_bot';
    const job = await run(nobody.toString(), 'rtg-no-user');
    expect(job.failedReason).toBe(`The role "no_such_bot" does not exist on the database server at ${label()}; check the user name in the target's URL.`);
  }, 120_000);

  it('`pg-backup-bot restore-test` does the same: roles applied and said, then PASSED', async () => {
    await dropOnSpare(app.role);
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l), tty: false };
    const code = await cliRestoreTest([backup.backupId], { config: onServer(spare.url), storage: kit.storage, log: kit.log, io });
    expect(code, err.join('\n')).toBe(0);
    expect(out.join('\n')).toMatch(new RegExp(`^Restore test of ${backup.backupId} PASSED`));
    expect(err.join('\n')).toMatch(new RegExp(`Roles on ${label()}: kept [^;]*\\bpostgres\\b[^;]*; created [^.]*\\b${app.role}\\b`));
    expect(await roleOnSpare(app.role)).toBe(true);
  }, 120_000);
});
