import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * A Slack that takes calls and never answers (a proxy black-holing them, an outage at Slack). QA: the Web API client
 * had no timeout, so a job's first post waited on Node's 300 s limit and then the retries, about 20 minutes, before the
 * dump began, and a failed backup paged nobody until then. Now each call is given 5 s, and once one went unanswered
 * the others fail at once for a minute: the backup runs, its failure pages.
 */
describe('a Slack that never answers', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  });
  afterAll(async () => h?.stop());

  const state = async (jobId: string) => (await h.service.deps.queues.backup.getJob(jobId))?.getState();

  it('holds back neither the backup nor the page of a failed one', async () => {
    h.slack.hang('chat.postMessage');
    const started = Date.now();
    const ok = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    for (const end = Date.now() + 60_000; (await state(ok)) !== 'completed' && Date.now() < end; ) await new Promise((r) => setTimeout(r, 200));
    expect(await state(ok), (await h.service.deps.queues.backup.getJob(ok))?.failedReason).toBe('completed');
    // One call's wait (5 s and three retries), not twenty minutes.
    expect(Date.now() - started).toBeLessThan(45_000);
    expect((await h.service.deps.storage.list('shop')).length).toBe(1);

    await h.source.drop();
    const failedAt = Date.now();
    const failed = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    const trigger = await h.pd.waitFor((e) => e.event_action === 'trigger' && e.dedup_key === 'pg-backup-bot/shop/backup', 30_000);
    expect(trigger.payload?.summary).toMatch(/does not exist/);
    expect(trigger.payload?.custom_details).toMatchObject({ jobId: failed });
    // Within the minute the calls fail at once: nothing waited on Slack again.
    expect(Date.now() - failedAt).toBeLessThan(15_000);
    h.slack.hang(null);
  }, 120_000);
});
