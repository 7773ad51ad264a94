import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHarness, type Harness } from '../e2e/harness.ts';

/**
 * Jobs whose data does not fit their schema (queued by an older version before an upgrade, or written into Redis by
 * hand) reach the running workers: each fails at once with a sentence, said in the channel and paged like any
 * failure of its kind, and nothing runs.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await h?.stop();
});

async function failedReason(queue: Queue, id: string): Promise<string> {
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    const job = await queue.getJob(id);
    // Read again once failed: the job read before its state may predate the failure (no failedReason yet).
    if ((await job?.getState()) === 'failed') return (await queue.getJob(id))?.failedReason ?? '';
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${id} did not fail`);
}

const said = (pattern: RegExp) => [...h.slack.messages.values()].find((m) => pattern.test(m.text ?? ''));

describe('job data checked at every worker’s door', () => {
  it('a backup job from an older version (no kind, no requestedBy) fails with a sentence, is said and paged for its target', async () => {
    const q = h.service.deps.queues.backup as unknown as Queue;
    const job = await q.add('backup', { target: 'shop', label: null }, { jobId: 'backup-old-version' });
    const reason = await failedReason(q, job.id ?? '');
    expect(reason).toMatch(/^The backup job backup-old-version was not run: its data does not fit this version of pg-backup-bot/);
    expect(reason).toMatch(/kind/);
    expect(reason).not.toMatch(/TypeError|Cannot read/);
    expect(reason).toMatch(/requestedBy/);
    await h.pd.waitFor((e) => e.dedup_key === 'pg-backup-bot/shop/backup' && e.event_action === 'trigger', 30_000);
    expect(said(/backup job backup-old-version was not run/)).toBeDefined();
    // Nothing was dumped.
    expect(await h.service.deps.storage.list('shop')).toEqual([]);
  });

  it('a restore-test job written by hand with a target that is no name is said and paged as the bot’s own', async () => {
    const q = h.service.deps.queues.restoreTest as unknown as Queue;
    const job = await q.add('restore-test', { target: 42, requestedBy: { source: 'slack' } }, { jobId: 'restore-test-by-hand' });
    const reason = await failedReason(q, job.id ?? '');
    expect(reason).toMatch(/^The restore-test job restore-test-by-hand was not run/);
    await h.pd.waitFor((e) => e.dedup_key === 'pg-backup-bot/_bot/restore-test' && e.event_action === 'trigger', 30_000);
    expect(said(/restore-test job restore-test-by-hand was not run/)).toBeDefined();
  });

  it('a restore job missing its selection fails before pg_restore is ever started', async () => {
    const q = h.service.deps.queues.restore as unknown as Queue;
    const job = await q.add(
      'restore',
      { target: 'shop', backupId: 'shop-20261204T000000Z', requestedBy: { source: 'slack' } },
      { jobId: 'restore-no-selection' },
    );
    const reason = await failedReason(q, job.id ?? '');
    expect(reason).toMatch(/^The restore job restore-no-selection was not run: its data does not fit/);
    expect(reason).toMatch(/into|tables/);
    expect(said(/restore job restore-no-selection was not run/)).toBeDefined();
  });
});
