import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { SlackMessage } from '../support/slack-server.ts';
import { channelMessage, jobIdOf, loadSampleSchema, slash, startHarness, type Harness } from './harness.ts';

/**
 * A routing key PagerDuty does not know (a typo, a deleted service): the strict stand-in answers every event 400, as
 * PagerDuty does. The channel was told "PagerDuty paged"; it must now hear that nobody was, and the next failure must
 * try to page again instead of "already paged".
 */
const WRONG_KEY = 'WR0NGKEY0123456789abcdefABCDEF01';
let h: Harness;

const refusals = (): SlackMessage[] => [...h.slack.messages.values()].filter((m) => !m.thread_ts && /PagerDuty refused a page/.test(m.text ?? ''));

async function waitForRefusals(n: number): Promise<SlackMessage[]> {
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    if (refusals().length >= n) return refusals();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`expected ${n} refusal posts, saw ${refusals().length}`);
}

async function failedBackup(): Promise<SlackMessage> {
  await h.source.drop();
  const jobId = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
  return channelMessage(h, jobId, /FAILED/);
}

async function bringSourceBack(): Promise<void> {
  const admin = new pg.Client({ connectionString: inject('pgUrl') });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${h.source.name}"`);
  await admin.end();
  await loadSampleSchema(h.source.url);
}

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl'), env: { PAGERDUTY_ROUTING_KEY: WRONG_KEY } });
});

afterAll(async () => {
  await h?.stop();
});

describe('when PagerDuty refuses the pages', () => {
  it('says in the channel that nobody was paged, and why', async () => {
    const verdict = await failedBackup();
    expect(JSON.stringify(verdict.blocks)).toMatch(/PagerDuty page queued/);
    const [post] = await waitForRefusals(1);
    expect(post?.text).toMatch(/nobody was paged for `pg-backup-bot\/shop\/backup` \(Backup of shop failed/);
    expect(post?.text).toContain('PagerDuty answered 400');
    expect(post?.text).toContain('Invalid routing key');
    expect(post?.text).toContain('Check PAGERDUTY_ROUTING_KEY');
    expect(h.pd.events).toEqual([]);
    expect(h.pd.rejected.filter((r) => r.status === 400)).toHaveLength(1);
    // The key itself is a secret: never in the channel.
    expect(post?.text).not.toContain(WRONG_KEY);
  }, 120_000);

  it('sends no resolve for the page that never was, and pages the next failure again', async () => {
    await bringSourceBack();
    const ok = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await channelMessage(h, ok, /succeeded/);
    // The verdict is posted before BullMQ moves the job to completed: asked at once, `/backup now` would name that job
    // (already running) instead of starting the failing one (a CI flake under load).
    const job = await h.service.deps.queues.backup.getJob(ok);
    for (let i = 0; !(await job?.isCompleted()) && i < 600; i++) await new Promise((r) => setTimeout(r, 50));
    await failedBackup();
    await waitForRefusals(2);
    // Oldest first, one dedup key's outbox in order: a resolve after the success would have come before this trigger.
    const sent = h.pd.rejected.map((r) => (r.body as { event_action?: string }).event_action);
    expect(sent).toEqual(['trigger', 'trigger']);
  }, 120_000);
});
