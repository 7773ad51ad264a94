import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Queue } from 'bullmq';
import type { SlackMessage } from '../support/slack-server.ts';
import { channelMessage, jobIdOf, slash, startHarness, type Harness } from './harness.ts';

/**
 * Slack answers 429 to some calls; @slack/web-api re-sends them after Retry-After. Progress edits fired without
 * waiting used to land after the verdict ("running — connecting" 1.5 s after "succeeded"), and a verdict whose
 * opening post was rate-limited lost its thread of details.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await h?.stop();
});

async function finished(queue: Queue, jobId: string): Promise<void> {
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    const state = await queue.getJobState(jobId);
    if (state === 'completed' || state === 'failed') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job ${jobId} did not finish`);
}

/** Every chat.update Slack accepted for this message, in the order it accepted them. */
function acceptedUpdates(ts: string): string[] {
  return h.slack.calls.filter((c) => c.method === 'chat.update' && c.body.ts === ts && c.response.ok === true).map((c) => String(c.body.text));
}

/** Long enough for every rate-limited call to come back after its Retry-After (1 s) and be answered. */
const settle = () => new Promise((r) => setTimeout(r, 3000));

function expectVerdictLast(msg: SlackMessage, verdict: RegExp): void {
  const updates = acceptedUpdates(msg.ts);
  expect(updates.length).toBeGreaterThanOrEqual(1);
  expect(updates.at(-1)).toMatch(verdict);
  // Nothing reached Slack after the verdict: the verdict is the only update that matches it, and it is the last.
  expect(updates.filter((t) => verdict.test(t))).toHaveLength(1);
  expect(h.slack.messages.get(msg.ts)?.text).toMatch(verdict);
}

describe('updates of one channel message under Slack rate limits', () => {
  it('a backup message ends with its verdict although the first five chat.update calls were answered 429', async () => {
    h.slack.rateLimitNext(5, 1, 'chat.update');
    const jobId = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    expect(jobId).toMatch(/^backup-shop-/);
    await finished(h.service.deps.queues.backup, jobId);
    await settle();
    const msg = await channelMessage(h, jobId, /./);
    expectVerdictLast(msg, /succeeded/);
    expect(h.slack.calls.filter((c) => c.method === 'chat.update' && c.response.ok === false).length).toBe(5);
  });

  it('a restore test message ends with its verdict under the same rate limit', async () => {
    h.slack.rateLimitNext(5, 1, 'chat.update');
    const jobId = jobIdOf((await slash(h, '/restore-test', 'latest')).text) ?? '';
    expect(jobId).not.toBe('');
    await finished(h.service.deps.queues.restoreTest, jobId);
    await settle();
    const msg = await channelMessage(h, jobId, /./);
    expectVerdictLast(msg, /passed/);
  });

  it('a backup whose opening post was rate-limited still posts its verdict with a thread of details', async () => {
    // The Web API client tries a call 4 times (3 retries): the opening post fails as a whole.
    h.slack.rateLimitNext(4, 1, 'chat.postMessage');
    const jobId = jobIdOf((await slash(h, '/backup', 'now')).text) ?? '';
    await finished(h.service.deps.queues.backup, jobId);
    const verdict = await channelMessage(h, jobId, /succeeded/);
    // Posted as a message of its own (never updated), with the details threaded under it.
    expect(verdict.updates).toBe(0);
    const thread = [...h.slack.messages.values()].filter((m) => m.thread_ts === verdict.ts);
    expect(thread.map((m) => m.text).join('\n')).toMatch(/shop\.orders/);
  });
});
