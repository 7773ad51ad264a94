import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import { runSql } from '../support/databases.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * `/restore <id> --to=restore-server --with-globals` that fails after the backup's roles were created there: the
 * verdict says which roles it created and that they stay (roles are the server's, not the dropped database's).
 */
const ADMIN = 'U0ADMIN';
const role = `left_${process.pid}`;
let h: Harness;
let spare: EphemeralPostgres;
let backupId: string;

beforeAll(async () => {
  spare = await startEphemeralPostgres();
  // Not a superuser: it creates the roles, then cannot give the sample schema's objects to postgres, a superuser.
  await runSql(spare.url, 'CREATE ROLE restorer LOGIN CREATEDB CREATEROLE');
  const u = new URL(spare.url);
  u.username = 'restorer';
  await runSql(inject('pgUrl'), `CREATE ROLE ${role}`);
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { RESTORE_ALLOWED_USERS: ADMIN, RESTORE_SERVER_URL: u.toString() } });
  const id = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
  await channelMessage(h, id, /succeeded/);
  backupId = (await h.service.deps.storage.list('shop'))[0]?.backupId ?? '';
});

afterAll(async () => {
  await h?.stop();
  await spare?.stop();
  await runSql(inject('pgUrl'), `DROP ROLE IF EXISTS ${role}`);
});

describe('/restore --to=restore-server --with-globals that fails after creating roles', () => {
  it('says which roles it created there and that they stay', async () => {
    const { text } = await slash(h, '/restore', `${backupId} --to=restore-server --with-globals`, { userId: ADMIN });
    const msg = await channelMessage(h, jobIdOf(text) ?? '', /FAILED|failed/, 120_000);
    const shown = JSON.stringify(msg.blocks);
    expect(await withClient(spare.url, async (c) => (await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount)).toBe(1);
    const spareUrl = new URL(spare.url);
    expect(shown).toMatch(new RegExp(`The roles this restore created on ${spareUrl.hostname}:${spareUrl.port} stay there: [^.]*${role}`));
  }, 180_000);
});
