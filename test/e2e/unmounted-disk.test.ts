import { mkdir, rename, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { until } from '../support/until.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * BACKUP_DIR on a disk that stops being mounted: an empty directory at its mount point. QA: the bot then listed no
 * backups, wrote the next one onto the root filesystem, called it good, resolved the stale page and judged the root
 * filesystem's free space ("all green"). Now BACKUP_DIR carries the bot's mark (storage-mark.ts): without it nothing
 * is written there, the backup fails and pages, and the disk check pages critical, until the disk is back.
 */
describe('a backup disk that is no longer mounted', () => {
  let h: Harness;
  const mounted = () => `${h.backupDir}.mounted`;

  beforeAll(async () => {
    h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  });
  afterAll(async () => {
    await rm(mounted(), { recursive: true, force: true });
    await h?.stop();
  });

  const jobFinished = (id: string) =>
    until(
      `job ${id} finished`,
      async () => {
        const job = await h.service.deps.queues.backup.getJob(id);
        return job && ((await job.isCompleted()) || (await job.isFailed())) ? true : undefined;
      },
      60_000,
    );

  const runHealth = async () => {
    const job = await h.service.deps.queues.health.add('health', {});
    await until('the health job', async () => ((await job.isCompleted()) || (await job.isFailed()) ? true : undefined), 60_000);
  };

  it('writes nothing there, pages the backup and the disk, and is well again once the disk is back', async () => {
    const first = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await channelMessage(h, first, /succeeded/);
    // Finished in the queue too: the verdict is posted before the job ends, and a `/backup now` meanwhile joins it
    // (a CI run under load got the first job's id back, and its "succeeded").
    await jobFinished(first);
    // "Unmounted": the disk's directory moved away, an empty one left at its path.
    await rename(h.backupDir, mounted());
    await mkdir(h.backupDir);
    await mkdir(`${h.backupDir}/_audit`); // the bot's own audit trail opens there again, as it would

    const second = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    const failed = await channelMessage(h, second, /FAILED/);
    expect(failed.text).toContain(`BACKUP_DIR ${h.backupDir} is not the storage the bot has written its backups to: its .pg-backup-bot-storage is gone`);
    const trigger = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/backup', 30_000);
    expect(trigger.payload?.summary).toContain('not mounted');
    expect(await h.service.deps.storage.list('shop')).toEqual([]);

    await runHealth();
    const disk = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === `pg-backup-bot/local:${h.backupDir}/disk`, 30_000);
    expect(disk.payload).toMatchObject({ severity: 'critical', summary: `Backup disk local:${h.backupDir}: not the bot's storage` });

    // Mounted again: the next backup succeeds, the disk page resolves.
    await rm(h.backupDir, { recursive: true, force: true });
    await rename(mounted(), h.backupDir);
    await jobFinished(second);
    const third = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await channelMessage(h, third, /succeeded/);
    expect((await h.service.deps.storage.list('shop')).length).toBe(2);
    await runHealth();
    await h.pd.waitFor((e) => e.event_action === 'resolve' && e.dedup_key === `pg-backup-bot/local:${h.backupDir}/disk`, 30_000);
  }, 180_000);
});
