import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { outboxKey, pageStateKey } from '../../src/notifications/escalation.ts';
import type { PagerDutyClient, PagerEvent } from '../../src/notifications/pagerduty-client.ts';
import { pagerDutyProcessor } from '../../src/workers/pagerduty-worker.ts';
import { startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The PagerDuty delivery processor against the strict PagerDuty stand-in: what it does when PagerDuty fails, refuses
 * an event, is not configured, or the job's data does not fit. An event leaves the outbox only once PagerDuty took it
 * or refused it for good.
 */

let kit: WorkerKit;

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
});

afterAll(async () => {
  await kit?.stop();
});

const processor = (client: PagerDutyClient | null = kit.pagerDuty) =>
  pagerDutyProcessor({ redis: kit.redis, prefix: kit.prefix, client, notifier: kit.notifier, log: kit.log });

/** A fresh dedup key with `events` waiting in its outbox, as the escalation leaves them. */
async function outbox(...events: Array<Partial<PagerEvent>>): Promise<string> {
  const key = `pg-backup-bot/shop/test-${randomUUID().slice(0, 8)}`;
  for (const e of events) {
    const event: PagerEvent = {
      action: 'trigger',
      dedupKey: key,
      summary: 'Backup of shop failed',
      severity: 'error',
      source: 'pg-backup-bot',
      timestamp: new Date().toISOString(),
      ...e,
    };
    await kit.redis.rpush(outboxKey(kit.prefix, key), JSON.stringify(event));
  }
  return key;
}

const waiting = (key: string) => kit.redis.llen(outboxKey(kit.prefix, key));
const accepted = (key: string) => kit.pd.events.filter((e) => e.dedup_key === key).map((e) => e.event_action);

describe('pagerDutyProcessor', () => {
  describe('a page PagerDuty has not taken for minutes', () => {
    it('is said in the channel once, with PagerDuty\'s answer, and again when PagerDuty takes it (QA: the channel had only "paged")', async () => {
      const queuedAt = new Date(Date.now() - 6 * 60_000).toISOString();
      const key = await outbox({ action: 'trigger', timestamp: queuedAt });
      kit.pd.failNext(2, 500);
      const job = await kit.runJob(processor(), { dedupKey: key }, { attempts: 3, backoffMs: 10 });
      expect(await job.getState()).toBe('completed');
      const said = [...kit.slack.messages.values()].filter((m) => m.text?.includes(key)).map((m) => m.text);
      expect(said).toHaveLength(2);
      expect(said[0]).toMatch(
        new RegExp(
          `^:rotating_light: A page has waited 6 min \\d+ s for PagerDuty, and nobody has been paged for \`${key}\` \\(Backup of shop failed\\): PagerDuty's last answer was .*500.*\\. It is sent again until PagerDuty takes it; whoever reads this, act on it meanwhile\\.$`,
        ),
      );
      expect(said[1]).toMatch(new RegExp(`^:white_check_mark: PagerDuty took the page for \`${key}\` \\(Backup of shop failed\\) after 6 min \\d+ s\\.$`));
      expect(accepted(key)).toEqual(['trigger']);
    });

    it("is not said while it is young: a short outage is PagerDuty's retries' business", async () => {
      const key = await outbox({ action: 'trigger' });
      kit.pd.failNext(1, 500);
      const job = await kit.runJob(processor(), { dedupKey: key }, { attempts: 2, backoffMs: 10 });
      expect(await job.getState()).toBe('completed');
      expect([...kit.slack.messages.values()].filter((m) => m.text?.includes(key))).toEqual([]);
    });
  });

  describe('when PagerDuty answers 500', () => {
    it('keeps the event and fails the attempt; the retry delivers it once', async () => {
      const key = await outbox({ action: 'trigger' }, { action: 'resolve', severity: 'info' });
      kit.pd.failNext(1, 500);
      const job = await kit.runJob(processor(), { dedupKey: key }, { attempts: 2, backoffMs: 10 });
      expect(await job.getState()).toBe('completed');
      expect(job.attemptsMade).toBe(2);
      expect(job.returnvalue).toEqual({ delivered: 2 });
      expect(accepted(key)).toEqual(['trigger', 'resolve']);
      expect(await waiting(key)).toBe(0);
    });

    it('with no attempt left the job fails with PagerDuty’s answer and the event stays for the next delivery', async () => {
      const key = await outbox({ action: 'trigger' });
      kit.pd.failNext(1, 503);
      const job = await kit.runJob(processor(), { dedupKey: key }, { attempts: 1 });
      expect(job.failedReason).toBe('PagerDuty answered 503');
      expect(accepted(key)).toEqual([]);
      expect(await waiting(key)).toBe(1);
    });
  });

  describe('when PagerDuty refuses an event (400)', () => {
    it('drops that event, says so in the channel, forgets the page, and still delivers the events after it', async () => {
      const key = await outbox({ severity: 'fatal' as PagerEvent['severity'] }, { action: 'resolve', severity: 'info' });
      // As the escalation leaves it when it enqueues a trigger.
      await kit.redis.set(pageStateKey(kit.prefix, key), 'triggered');
      const job = await kit.runJob(processor(), { dedupKey: key });
      expect(job.returnvalue).toEqual({ delivered: 2 });
      expect(accepted(key)).toEqual(['resolve']);
      expect(kit.pd.rejected.some((r) => r.status === 400 && JSON.stringify(r.body).includes(key))).toBe(true);
      expect(kit.logs.some((l) => l.includes('PagerDuty rejected an event') && l.includes(key))).toBe(true);
      expect(await waiting(key)).toBe(0);
      expect(await kit.redis.get(pageStateKey(kit.prefix, key))).toBeNull();
      const said = [...kit.slack.messages.values()].find((m) => m.text?.includes(key));
      expect(said?.text).toMatch(
        /^:rotating_light: PagerDuty refused a page: nobody was paged for `[^`]+` \(Backup of shop failed\)\. PagerDuty answered 400: /,
      );
      expect(said?.text).toContain('Check PAGERDUTY_ROUTING_KEY');
    });

    it('keeps the page state when a later trigger of the same key waits behind the refused one', async () => {
      // The condition cleared and failed again before the first trigger went out: the state is the second one's.
      const key = await outbox({ severity: 'fatal' as PagerEvent['severity'] }, { action: 'resolve', severity: 'info' }, { action: 'trigger' });
      await kit.redis.set(pageStateKey(kit.prefix, key), 'triggered');
      const job = await kit.runJob(processor(), { dedupKey: key });
      expect(job.returnvalue).toEqual({ delivered: 3 });
      expect(accepted(key)).toEqual(['resolve', 'trigger']);
      expect(await kit.redis.get(pageStateKey(kit.prefix, key))).toBe('triggered');
    });
  });

  describe('when PagerDuty is not configured', () => {
    it('fails for good and leaves the outbox as it was', async () => {
      const key = await outbox({ action: 'trigger' });
      const job = await kit.runJob(processor(null), { dedupKey: key }, { attempts: 3 });
      expect(job.failedReason).toBe('PagerDuty is not configured');
      expect(job.attemptsMade).toBe(1);
      expect(await waiting(key)).toBe(1);
    });
  });

  describe('when the job data does not fit', () => {
    it('fails for good with a sentence and sends nothing', async () => {
      const before = kit.pd.requests.length;
      const job = await kit.runJob(processor(), { key: 'pg-backup-bot/shop/backup' }, { jobId: 'pd-bad-data', attempts: 3 });
      expect(job.failedReason).toBe('The pagerduty job pd-bad-data was not run: its data does not fit this version of pg-backup-bot.');
      expect(job.attemptsMade).toBe(1);
      expect(kit.pd.requests.length).toBe(before);
    });
  });
});
