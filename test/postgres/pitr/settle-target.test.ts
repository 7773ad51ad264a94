import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BaseBackup } from '../../../src/postgres/pitr/base-backup.ts';
import { settleRecoveryTarget } from '../../../src/postgres/pitr/last-commit.ts';

/** restore-pitr's target against the archive's newest commit, which pg_waldump gives to the microsecond. */
describe('settleRecoveryTarget', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const base = { id: 'b1', startLsn: '0/2000028', endLsn: '0/2000100', timeline: 1 } as BaseBackup;
  // 13:30:09.577072: a commit in the archive's last segment.
  const newest = { at: new Date('2026-12-06T13:30:09.577Z'), lsn: '0/3000F28', usec: Date.parse('2026-12-06T13:30:09Z') * 1000 + 577_072 };

  const settle = async (at: string) => {
    dir = await mkdtemp(join(tmpdir(), 'pgbb-settle-'));
    await writeFile(join(dir, 'postgresql.auto.conf'), `restore_command = 'x'\nrecovery_target_time = '${at}'\n`);
    const out = await settleRecoveryTarget({ base, dataDir: dir, at: new Date(at), newest, pgWaldump: true });
    return { out, conf: await readFile(join(dir, 'postgresql.auto.conf'), 'utf8') };
  };

  it('keeps a time the newest commit follows by less than a millisecond: that commit is after it (QA)', async () => {
    const { out, conf } = await settle('2026-12-06T13:30:09.577Z');
    expect(out.said).toBe('It recovers to 2026-12-06T13:30:09.577Z.');
    expect(conf).toContain("recovery_target_time = '2026-12-06T13:30:09.577Z'");
  });

  it('recovers to the newest commit’s LSN for a time at or after it', async () => {
    const { out, conf } = await settle('2026-12-06T13:30:09.578Z');
    expect(out.said).toMatch(/it recovers to the archive's newest commit, at 2026-12-06T13:30:09\.577072Z \(LSN 0\/3000F28\)/);
    expect(conf).toContain("recovery_target_lsn = '0/3000F28'");
    expect(conf).not.toContain('recovery_target_time');
  });
});
