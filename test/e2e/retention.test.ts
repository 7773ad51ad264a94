import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { RetentionSummary } from '../../src/notifications/retention-messages.ts';
import type { RetentionJobData } from '../../src/schedules/job-data.ts';
import { store } from '../storage/retention-fixtures.ts';
import { slash, startHarness, type Harness } from './harness.ts';

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
      `:wastebasket: Retention on local:${h.backupDir} (dry run, nothing deleted): would delete 2 backups and 0 unfinished or damaged backups; kept 1.`,
    ]);

    const real = await retention(false);
    expect(real.returnvalue).toMatchObject({ dryRun: false, deleted: 2, cleaned: 0, failed: 0 } satisfies Partial<RetentionSummary>);
    expect((await storage.list()).map((m) => m.backupId)).toEqual([fresh.backupId]);
    const report = posts()[1];
    expect(report?.channel).toBe('C0INCIDENTS');
    expect(report?.text?.split('\n')).toEqual([
      `:wastebasket: Retention on local:${h.backupDir}: deleted 2 backups and 0 unfinished or damaged backups; kept 1.`,
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

  it('after retention, the checksum scrub finds a backup that rotted on disk: said in the channel, left out of /backup list, damaged in /backup health', async () => {
    const storage = h.service.deps.storage;
    const now = new Date();
    const good = await store(storage, 'shop', now, 2, 30);
    const rotted = await store(storage, 'shop', now, 3, 30);
    // One bit flipped, the size unchanged: every listing still calls it good; only reading it back can tell.
    const file = join(h.backupDir, 'shop', rotted.backupId, 'database.pgdump.zst');
    const bytes = await readFile(file);
    bytes[0] = (bytes[0] ?? 0) ^ 0x01;
    await writeFile(file, bytes);
    expect((await storage.list('shop')).map((m) => m.backupId)).toContain(rotted.backupId);

    await retention(false);
    const said = [...h.slack.messages.values()].filter((m) => m.text?.includes(rotted.backupId));
    expect(said.map((m) => m.text)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^:rotating_light: Backup ${rotted.backupId} of shop is damaged: the checksum scrub found artifact corrupted: database\\.pgdump\\.zst \\(sha256 [0-9a-f]{12}… expected, [0-9a-f]{12}… found\\)\\. It is marked damaged and left out of \`/backup list\`; take a new backup \\(\`/backup now shop\`\\) if you counted on it\\.$`,
        ),
      ),
    ]);
    expect((await storage.list('shop')).map((m) => m.backupId)).toEqual(expect.arrayContaining([good.backupId]));
    expect((await storage.list('shop')).map((m) => m.backupId)).not.toContain(rotted.backupId);
    const list = (await slash(h, '/backup', 'list shop')).text;
    expect(list).toContain(rotted.backupId);
    expect(list).toMatch(/the checksum scrub found artifact corrupted/);
    expect((await slash(h, '/backup', 'health shop')).text).toMatch(new RegExp(`stored backups damaged: .*${rotted.backupId}.*checksum scrub`));
  });
});
