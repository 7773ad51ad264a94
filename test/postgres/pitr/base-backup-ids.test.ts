import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EphemeralPostgres, startEphemeralPostgres } from '../../../src/dev/ephemeral.ts';
import { runBaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { listBaseBackups } from '../../../src/postgres/pitr/pitr-restore.ts';
import { verifyStoredBaseBackup } from '../../../src/postgres/pitr/take-base-backup.ts';
import { findPgProgram, findPgTools } from '../../../src/postgres/tools.ts';

/** Two base backups started in the same second (one waited for the other's lock) keep a directory each. */
describe('base backup ids', () => {
  let pg: EphemeralPostgres;
  let dir: string;
  beforeAll(async () => {
    pg = await startEphemeralPostgres();
    dir = await mkdtemp(join(tmpdir(), 'pgbb-base-ids-'));
  });
  afterAll(async () => {
    await pg?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('are unique per target even within one second, and each reads back as written', async () => {
    const tools = await findPgTools({ serverMajor: 15 });
    const pgBasebackup = (await findPgProgram('pg_basebackup', tools.pgDump, tools.major)) as string;
    const at = new Date('2026-12-06T01:00:00.000Z');
    const run = () =>
      runBaseBackup({
        target: 'app',
        root: dir,
        replicationUrl: pg.url,
        pgBasebackup,
        zstd: 'zstd',
        level: 1,
        recipients: [],
        ageEngine: undefined,
        now: () => at,
      });
    const a = await run();
    const b = await run();
    expect([a.id, b.id]).toEqual(['app-base-20261206T010000Z', 'app-base-20261206T010000Z-2']);
    expect((await readdir(join(dir, 'app', '_base'))).sort()).toEqual([a.id, b.id]);
    expect((await listBaseBackups(dir, 'app')).map((x) => x.id).sort()).toEqual([a.id, b.id]);
    await verifyStoredBaseBackup(dir, a);
    await verifyStoredBaseBackup(dir, b);
    // A record that does not match what is on disk is refused, with a sentence.
    await expect(verifyStoredBaseBackup(dir, { ...a, sha256: '0'.repeat(64) })).rejects.toThrow(/does not match what was written/);
  }, 120_000);
});
