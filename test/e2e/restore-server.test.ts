import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralPostgres, type EphemeralPostgres } from '../../src/dev/ephemeral.ts';
import type { Manifest } from '../../src/storage/manifest.ts';
import { fingerprint } from '../support/fingerprint.ts';
import { withClient } from '../support/postgres-helpers.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * The target's server is gone: `/restore <id> --to=restore-server [--with-globals]` restores the whole database
 * onto RESTORE_SERVER_URL. Applying roles there is an admin's call.
 */
const ADMIN = 'U0ADMIN';
let h: Harness;
let spare: EphemeralPostgres;
let backup: Manifest;

beforeAll(async () => {
  spare = await startEphemeralPostgres();
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { RESTORE_ALLOWED_USERS: ADMIN, RESTORE_SERVER_URL: spare.url } });
  const id = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
  await channelMessage(h, id, /succeeded/);
  const [newest] = await h.service.deps.storage.list('shop');
  if (!newest) throw new Error('no backup');
  backup = newest;
});

afterAll(async () => {
  await h?.stop();
  await spare?.stop();
});

const onSpare = (db: string) => {
  const u = new URL(spare.url);
  u.pathname = `/${db}`;
  return u.toString();
};

describe('/restore --to=restore-server', () => {
  it('applying the backup’s roles there is refused to operators, and allowed to admins', async () => {
    const before = await h.service.deps.queues.restore.count();
    const refused = await slash(h, '/restore', `${backup.backupId} --to=restore-server --with-globals`);
    expect(refused.text).toMatch(/Refused/);
    expect(await h.service.deps.queues.restore.count()).toBe(before);
  });

  it('restores the whole database onto the restore server with its roles, verified, listed there and dropped there', async () => {
    const { text } = await slash(h, '/restore', `${backup.backupId} --to=restore-server --with-globals`, { userId: ADMIN });
    const spareUrl = new URL(spare.url);
    expect(text).toContain(`on ${spareUrl.hostname}:${spareUrl.port}, the backup’s roles applied there first`);
    const database = /new database `([^`]+)`/.exec(text)?.[1] ?? '';
    const msg = await channelMessage(h, jobIdOf(text) ?? '', /Restored the whole database/, 120_000);
    const shown = JSON.stringify(msg.blocks);
    expect(shown).toContain(`Roles on ${spareUrl.hostname}:${spareUrl.port}: kept postgres`);
    expect(shown).not.toMatch(/Owners and grants were not restored/);
    const [source, copy] = await Promise.all([fingerprint(h.source.url), fingerprint(onSpare(database))]);
    expect(copy.tables).toEqual(source.tables);
    expect(copy.definitions).toEqual(source.definitions);
    // Not on the target's server.
    expect(await withClient(inject('pgUrl'), async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount)).toBe(0);

    expect((await slash(h, '/restore', 'list')).text).toContain(`\`${database}\` on ${spareUrl.hostname}:${spareUrl.port}`);
    expect((await slash(h, '/restore', `drop ${database}`)).text).toMatch(/Dropped/);
    expect(await withClient(spare.url, async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount)).toBe(0);
  }, 180_000);
});
