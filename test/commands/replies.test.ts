import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { formatBackupList, formatQueueStatus, kindLabel } from '../../src/commands/replies.ts';
import type { BackupJobData } from '../../src/jobs/queues.ts';
import { makeManifest } from '../fixtures/backups.ts';
import { until } from '../support/until.ts';

describe('kindLabel (the kind column of /backup list)', () => {
  it('tells scheduled classes apart and shows a pre-migration backup’s ticket', () => {
    expect(kindLabel({ kind: 'scheduled', retentionClass: 'frequent', label: null })).toBe('scheduled (frequent)');
    expect(kindLabel({ kind: 'scheduled', retentionClass: 'daily', label: null })).toBe('scheduled (daily)');
    expect(kindLabel({ kind: 'pre-migration', retentionClass: 'pre-migration', label: 'JIRA-1234' })).toBe('pre-migration JIRA-1234');
    expect(kindLabel({ kind: 'manual', retentionClass: 'manual', label: null })).toBe('manual');
    expect(kindLabel({ kind: 'pre-migration', retentionClass: 'pre-migration', label: '<!here>' })).toBe('pre-migration &lt;!here&gt;');
  });
});

describe('formatBackupList', () => {
  it('names the backups it leaves out as damaged, and why, also when none is left to list', () => {
    const damaged = [{ backupId: 'shop-20261205T094959Z', why: 'artifact database.pgdump.zst.age is missing or has the wrong size' }];
    expect(formatBackupList([], 'shop', { time: (at) => at.toISOString(), damaged })).toBe(
      'No restorable backups of *shop*. Take a new one with `/backup now shop`, and check the storage.\n:warning: 1 backup is not listed, damaged (the bot cannot restore it): `shop-20261205T094959Z` (artifact database.pgdump.zst.age is missing or has the wrong size)',
    );
    expect(formatBackupList([], 'shop', { time: (at) => at.toISOString() })).toBe('No finished backups of *shop* yet. Take one with `/backup now shop`.');
  });

  it('a damaged backup past its deadline is named with it, and that the next retention run deletes it (QA: it was in no report)', () => {
    const damaged = [{ backupId: 'shop-20261005T094959Z', why: 'marked damaged', expired: '2026-11-04T09:49:59.000Z' }];
    expect(formatBackupList([], 'shop', { time: (at) => at.toISOString(), damaged })).toBe(
      'No restorable backups of *shop*. Take a new one with `/backup now shop`, and check the storage.\n:wastebasket: 1 backup is not listed, damaged or half-deleted and past its retention deadline: the next retention run deletes it: `shop-20261005T094959Z` (marked damaged; deadline 2026-11-04T09:49:59.000Z)',
    );
  });

  it('a backup whose roles file alone is damaged is not called unrestorable: restores without --with-globals take it', () => {
    const damaged = [
      { backupId: 'shop-20261205T094959Z', why: 'artifact globals.sql.zst.age is missing', archiveIntact: true as const },
      { backupId: 'shop-20261204T094959Z', why: 'artifact database.pgdump.zst.age is missing' },
    ];
    const both = formatBackupList([], 'shop', { time: (at) => at.toISOString(), damaged }).split('\n');
    expect(both).toEqual([
      'No restorable backups of *shop*. Take a new one with `/backup now shop`, and check the storage.',
      ':warning: 1 backup is not listed, damaged (the bot cannot restore it): `shop-20261204T094959Z` (artifact database.pgdump.zst.age is missing)',
      ':warning: 1 backup is not listed, its roles file damaged: its database archive is intact: restores without `--with-globals` take it (restore tests, which prove the whole backup, do not): `shop-20261205T094959Z` (artifact globals.sql.zst.age is missing)',
    ]);
    const rolesOnly = formatBackupList([], 'shop', { time: (at) => at.toISOString(), damaged: damaged.slice(0, 1) });
    expect(rolesOnly).toMatch(/^No whole backups of \*shop\*\./);
    expect(rolesOnly).not.toMatch(/cannot restore/);
  });

  it('marks a backup whose latest restore test failed: listed, but not good', () => {
    const m = (id: string, at: string) => makeManifest({ target: 'shop', backupId: id, startedAt: at });
    const list = formatBackupList([m('shop-20261205T020000Z', '2026-12-05T02:00:00Z'), m('shop-20261204T020000Z', '2026-12-04T02:00:00Z')], 'shop', {
      time: (at) => at.toISOString(),
      failedTests: new Set(['shop-20261205T020000Z']),
    }).split('\n');
    expect(list[1]).toMatch(/^• `shop-20261205T020000Z` .* · :x: its restore test FAILED$/);
    expect(list[2]).not.toContain('FAILED');
  });
});

describe('formatQueueStatus', () => {
  let redis: Redis;
  let queue: Queue<BackupJobData>;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    queue = new Queue<BackupJobData>('backup', { connection: redis, prefix: `{replies-${randomUUID().slice(0, 8)}}` });
  });
  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    await redis.quit();
  });

  it('names the migration of a waiting pre-migration backup and the schedule of a scheduled one', async () => {
    const slack = { source: 'slack' as const, userId: 'U0ANA' };
    await queue.add('backup', { target: 'shop', kind: 'pre-migration', label: 'JIRA-1234', requestedBy: slack }, { jobId: 'backup-shop-1' });
    await queue.add(
      'backup',
      { target: 'shop', kind: 'scheduled', label: null, requestedBy: { source: 'schedule' }, schedule: { id: 'daily', retentionClass: 'daily', keepDays: 30 } },
      { jobId: 'backup-shop-2' },
    );
    const text = await formatQueueStatus(queue);
    expect(text).toMatch(/• `backup-shop-1` · shop · pre-migration JIRA-1234 · by <@U0ANA> · since /);
    expect(text).toMatch(/• `backup-shop-2` · shop · scheduled by `daily` · by schedule · since /);
  });

  it('says of a failed backup that a later one of its target succeeded (QA: listed as if still failing)', async () => {
    const prefix = `{replies-since-${randomUUID().slice(0, 8)}}`;
    const queue = new Queue<BackupJobData>('backup', { connection: redis, prefix });
    const data = (target: string) => ({ target, kind: 'manual' as const, label: null, requestedBy: { source: 'slack' as const, userId: 'U0ANA' } });
    const worker = new Worker<BackupJobData>(
      'backup',
      async (job) => {
        if (job.id?.endsWith('-bad')) throw new Error('connection refused');
      },
      { connection: redis.duplicate(), prefix },
    );
    try {
      const settled = (id: string) =>
        until(`job ${id} settled`, async () => (['failed', 'completed'].includes(await queue.getJobState(id)) ? true : undefined), 10_000);
      await queue.add('backup', data('shop'), { jobId: 'shop-bad' });
      await settled('shop-bad');
      await queue.add('backup', data('blog'), { jobId: 'blog-bad' });
      await settled('blog-bad');
      await queue.add('backup', data('shop'), { jobId: 'shop-good' });
      await settled('shop-good');
      const text = await formatQueueStatus(queue);
      expect(text).toMatch(/• `shop-bad` · shop · .* — .*connection refused; a backup of shop succeeded since \(`shop-good`, .+ UTC\)/);
      // Another target's success says nothing of blog's failure.
      expect(text).toMatch(/• `blog-bad` · blog · .* — .*connection refused$/m);
    } finally {
      await worker.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it('says a job lost with its worker in the channel’s words, not BullMQ’s', async () => {
    // A queue of its own: the dying worker must take this job, not the ones the test above left waiting.
    const prefix = `{replies-lost-${randomUUID().slice(0, 8)}}`;
    const queue = new Queue<BackupJobData>('backup', { connection: redis, prefix });
    await queue.add(
      'backup',
      { target: 'shop', kind: 'manual', label: null, requestedBy: { source: 'slack', userId: 'U0ANA' } },
      { jobId: 'backup-shop-lost' },
    );
    // A worker takes it and dies (closed by force: its lock is no longer renewed, as when its process is killed).
    let taken!: () => void;
    const took = new Promise<void>((resolve) => (taken = resolve));
    const hang = () => {
      taken();
      return new Promise<never>(() => undefined);
    };
    const dying = new Worker('backup', hang, {
      connection: redis.duplicate(),
      prefix,
      lockDuration: 500,
      stalledInterval: 300,
    });
    await took;
    await dying.close(true);
    // The next worker's stalled-job check gives it up (no retry here) and fails it without running it.
    const next = new Worker('backup', async () => undefined, {
      connection: redis.duplicate(),
      prefix,
      lockDuration: 500,
      stalledInterval: 300,
      maxStalledCount: 0,
    });
    try {
      const end = Date.now() + 10_000;
      while ((await queue.getJobState('backup-shop-lost')) !== 'failed' && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      const text = await formatQueueStatus(queue);
      expect(text).toMatch(
        /\*Recently failed\* \(1\)\n• `backup-shop-lost` · shop · manual · by <@U0ANA> · since .+ — the worker running it stopped before it finished \(its process crashed, was killed or lost Redis\)/,
      );
      expect(text).not.toMatch(/allowable limit/);
    } finally {
      await next.close();
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });
});
