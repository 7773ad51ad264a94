import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RetentionSummary } from '../../src/notifications/retention-messages.ts';
import type { RetentionJobData } from '../../src/schedules/job-data.ts';
import { store } from '../storage/retention-fixtures.ts';
import { startHarness, type Harness } from './harness.ts';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), pagerDuty: false });
});

afterAll(async () => {
  await h?.stop();
});

/** Enqueues a retention job the way the scheduler does and waits until the worker has finished it. */
async function retention(dryRun: boolean): Promise<Job<RetentionJobData>> {
  const job = await h.service.deps.queues.retention.add('retention', { dryRun });
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return (await h.service.deps.queues.retention.getJob(job.id ?? '')) as Job<RetentionJobData>;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the retention job did not finish');
}

const posts = () => [...h.slack.messages.values()].filter((m) => /Retention/.test(m.text ?? ''));

describe('the retention worker', () => {
  it('deletes expired backups, reports in the channel, audits each deletion; a dry run only reports; a quiet day posts nothing', async () => {
    const storage = h.service.deps.storage;
    const now = new Date();
    const old = await store(storage, 'shop', now, 40, 30);
    const older = await store(storage, 'shop', now, 45, 30);
    const fresh = await store(storage, 'shop', now, 1, 30);

    const dry = await retention(true);
    expect(dry.returnvalue).toMatchObject({ dryRun: true, deleted: 2, failed: 0 } satisfies Partial<RetentionSummary>);
    expect((await storage.list()).length).toBe(3);
    expect(posts().map((m) => m.text?.split('\n')[0])).toEqual([
      `:wastebasket: Retention on local:${h.backupDir} (dry run, nothing deleted): would delete 2 backups and 0 unfinished backups; kept 1.`,
    ]);

    const real = await retention(false);
    expect(real.returnvalue).toMatchObject({ dryRun: false, deleted: 2, cleaned: 0, failed: 0 } satisfies Partial<RetentionSummary>);
    expect((await storage.list()).map((m) => m.backupId)).toEqual([fresh.backupId]);
    const report = posts()[1];
    expect(report?.channel).toBe('C0INCIDENTS');
    expect(report?.text?.split('\n')).toEqual([
      `:wastebasket: Retention on local:${h.backupDir}: deleted 2 backups and 0 unfinished backups; kept 1.`,
      expect.stringMatching(new RegExp(`^• Deleted ${older.backupId}: expired .* \\(daily\\)$`)),
      expect.stringMatching(new RegExp(`^• Deleted ${old.backupId}: expired .* \\(daily\\)$`)),
    ]);
    const audit = (await readFile(join(h.backupDir, '_audit', 'audit.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.what === 'retention');
    expect(audit.map((e) => [e.kind, e.args, e.jobId, String(e.result).replace(/ expired .*/, '')])).toEqual([
      ['job', `local:${h.backupDir} ${older.backupId}`, real.id, 'deleted:'],
      ['job', `local:${h.backupDir} ${old.backupId}`, real.id, 'deleted:'],
    ]);

    // Nothing expired: the run is in the job's result and the logs, not in #incidents.
    const quiet = await retention(false);
    expect(quiet.returnvalue).toMatchObject({ deleted: 0, cleaned: 0, failed: 0 });
    expect(posts()).toHaveLength(2);
  });
});
