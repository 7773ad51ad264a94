import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withPgEnv } from '../../../src/postgres/connection.ts';
import { pastRemovedWal } from '../../../src/postgres/pitr/removed-wal.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';
import { silentLog, withClient } from '../../support/postgres-helpers.ts';

/**
 * What the receiver does when the server no longer has the WAL it asks for (removed-wal.ts), one thing per failure,
 * against a real server and the real pg_receivewal: the spool's partial set aside; completed segments left to the
 * sweep; the slot dropped only when the server says it points at (or before) the removed segment, never one that is
 * past it (its WAL would be lost with it: second reader).
 */
describe('WAL the server has removed', () => {
  let dir: string;
  let pgReceivewal: string;
  const url = () => inject('pgUrl');
  const slot = `pgbb_removed_${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-removed-'));
    const tools = await findPgTools({ serverMajor: 15 });
    pgReceivewal = (await findPgProgram('pg_receivewal', tools.pgDump, tools.major)) as string;
    await withClient(url(), (c) => c.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]));
  });

  afterAll(async () => {
    await withClient(url(), (c) => c.query('SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1', [slot]));
    await rm(dir, { recursive: true, force: true });
  });

  const slotSegment = () =>
    withClient(url(), async (c) => {
      const { rows } = await c.query<{ seg: string | null }>('SELECT pg_walfile_name(restart_lsn) AS seg FROM pg_replication_slots WHERE slot_name = $1', [
        slot,
      ]);
      return rows[0]?.seg ?? null;
    });
  const run = (spool: string, segment: string) =>
    withPgEnv(url(), (env) => pastRemovedWal({ pgReceivewal, url: url(), slot, spool, log: silentLog, env, segment }));

  it('sets the partial aside, leaves completed segments to the sweep, keeps a slot that is past it, drops one that points there', async () => {
    const at = (await slotSegment()) as string;
    const spool = join(dir, 'spool');
    await mkdir(spool);
    // 1. The spool's partial segment is what asks: set aside, the slot untouched.
    await writeFile(join(spool, `${at}.partial`), 'old');
    expect(await run(spool, at)).toMatch(new RegExp(`The spool's ${at}\\.partial set aside`));
    expect(await readdir(join(spool, '.diverged'))).toEqual([expect.stringMatching(new RegExp(`^${at}\\.partial\\.\\d+$`))]);
    // 2. A completed segment waiting for the sweep: nothing done.
    await writeFile(join(spool, at), 'whole');
    expect(await run(spool, at)).toMatch(/completed segments are archived first/);
    await rm(join(spool, at));
    // 3. An empty spool, and an older segment removed: the slot is past it, so it holds WAL still needed: kept.
    const older = `${at.slice(0, 16)}${(Number.parseInt(at.slice(16), 16) - 1).toString(16).toUpperCase().padStart(8, '0')}`;
    expect(await run(spool, older)).toMatch(new RegExp(`The slot ${slot} is past it \\(restart_lsn `));
    expect(await slotSegment()).toBe(at);
    // 4. The segment the slot points into: dropped, for the next start to make it at the server's position.
    expect(await run(spool, at)).toMatch(new RegExp(`The slot ${slot} pointed there \\(restart_lsn .*\\): the bot dropped it`));
    expect(await withClient(url(), async (c) => (await c.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount)).toBe(0);
    // Recreated for afterAll's drop.
    await withClient(url(), (c) => c.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]));
  });
});
