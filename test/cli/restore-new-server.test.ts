import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import type { AppDatabase } from '../support/app-database.ts';
import { appBackedUpByCli, cli } from '../support/app-backups.ts';
import { fingerprint } from '../support/fingerprint.ts';

/**
 * The server is gone: `pg-backup-bot restore <id> --to-url-env=… --with-globals` brings an application database
 * back on a new, empty server, its roles first, and the copy is compared with its source by plain SQL.
 */
describe('pg-backup-bot restore onto a new server', () => {
  let app: AppDatabase;
  let newServer: EphemeralPostgres;
  let env: Record<string, string>;
  let backupId: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    newServer = await startEphemeralPostgres();
    ({ app, env, backupId, cleanup } = await appBackedUpByCli(inject('pgUrl'), 'lost'));
  });

  afterAll(async () => {
    await newServer?.stop();
    await cleanup?.();
  });

  it('restores roles first (kept and created, listed), then the whole database with its owners and grants, verified', async () => {
    const run = await cli(['restore', backupId, '--to-url-env=NEW_SERVER_URL', '--with-globals'], { ...env, NEW_SERVER_URL: newServer.url });
    expect(run.exitCode, run.stderr).toBe(0);
    const server = new URL(newServer.url);
    // Globals are the cluster's: the test server's other roles come along, created too; postgres existed.
    const roles = new RegExp(`Roles on ${server.hostname}:${server.port}: kept postgres; created ([^.]+)\\.`).exec(run.stderr)?.[1]?.split(', ') ?? [];
    expect(roles).toContain(app.role);
    const restored = /Restored the whole database into (\S+) in /.exec(run.stdout)?.[1] ?? '';
    expect(restored).toMatch(/^pgbb_restore_/);
    expect(run.stdout).toMatch(/rows; checked: .*tables: content identical; \d+ definitions identical/);
    expect(run.stdout).not.toMatch(/Owners and grants were not restored/);
    // The summary names the roles applied and how to give the database its own name back there.
    expect(run.stdout).toContain(`  roles  Roles on ${server.hostname}:${server.port}: kept postgres; created `);
    expect(run.stdout).toContain(
      `  name   to give it the source's name: ALTER DATABASE "${restored}" RENAME TO "${app.name}" (with nobody connected to it; ${app.name} must not exist there)`,
    );

    const copy = new URL(newServer.url);
    copy.pathname = `/${restored}`;
    const [source, onNew] = await Promise.all([fingerprint(app.url), fingerprint(copy.toString())]);
    // Rows, definitions, owners and grants (billing belongs to the application role), large objects, the
    // database's locale and comment, collation and per-role settings: all as in the source.
    expect(onNew.database).toEqual(source.database);
    expect(onNew.tables).toEqual(source.tables);
    expect(onNew.definitions).toEqual(source.definitions);
    expect(onNew.largeObjects).toEqual(source.largeObjects);
    expect(onNew.collationOrder).toBe(source.collationOrder);
    expect(onNew.settings).toEqual(source.settings);
  });

  it('refuses a password on the command line, pointing at --to-url-env', async () => {
    const u = new URL(newServer.url);
    u.password = 'secret-in-argv';
    const run = await cli(['restore', backupId, `--to-url=${u.toString()}`], env);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/has a password, which the command line would show to everyone on this machine: .*--to-url-env=NAME/);
  });
});
