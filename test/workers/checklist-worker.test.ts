import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { configWith, recordingNotifier, shop } from '../support/checklist-kit.ts';
import { silentLog } from '../support/postgres-helpers.ts';
import { tempRoot } from '../storage/fixtures.ts';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createChecklistStore, type ChecklistStore } from '../../src/checklists/state.ts';
import type { ChecklistJob } from '../../src/jobs/checklist-data.ts';
import type { MessageRef } from '../../src/notifications/types.ts';
import { checklistProcessor, type ChecklistWorkerDeps } from '../../src/workers/checklist-worker.ts';
import type { SlackMessage } from '../support/slack-server.ts';
import { CHANNEL_ID, requestedBy, startWorkerKit, type WorkerKit } from './worker-kit.ts';

/**
 * The checklist processor: posting is the job, so a Slack error fails it (and BullMQ retries it); a retry after the
 * post never posts a second checklist; a job whose data does not fit is refused in the channel, not in silence.
 */

let kit: WorkerKit;
let store: ChecklistStore;

beforeAll(async () => {
  kit = await startWorkerKit({ pgUrl: inject('pgUrl'), redisUrl: inject('redisUrl') });
  store = createChecklistStore(kit.redis, kit.prefix);
});

afterAll(async () => {
  await kit?.stop();
});

const deps = (over: Partial<ChecklistWorkerDeps> = {}): ChecklistWorkerDeps => ({
  config: kit.config,
  storage: kit.storage,
  runs: kit.runs,
  retention: null,
  notifier: kit.notifier,
  store,
  log: kit.log,
  ...over,
});

/** The pre-migration checklist of a backup that failed: its items need no verifier, only the results handed on. */
const failedBackupChecklist = (label: string): ChecklistJob => ({
  kind: 'pre-migration',
  target: 'shop',
  label,
  requestedBy,
  backup: { ok: false, jobId: `pm-${label}`, reason: 'Could not connect to the database server' },
  restoreTest: null,
});

const checklistsAbout = (label: string): SlackMessage[] =>
  [...kit.slack.messages.values()].filter((m) => !m.thread_ts && JSON.stringify(m.blocks ?? '').includes(label));

describe('checklistProcessor', () => {
  describe('when the job data does not fit', () => {
    it('fails at once with a sentence, said in the channel, and posts no checklist', async () => {
      const job = await kit.runJob(
        checklistProcessor(deps()),
        { kind: 'pre-migration', target: 'shop', label: 'JIRA 1; drop' },
        { jobId: 'cl-bad-data', attempts: 3 },
      );
      expect(await job.getState()).toBe('failed');
      expect(job.attemptsMade).toBe(1);
      expect(job.failedReason).toMatch(/^The checklist job cl-bad-data was not run: its data does not fit this version of pg-backup-bot/);
      const said = [...kit.slack.messages.values()].filter((m) => (m.text ?? '').includes('checklist job cl-bad-data was not run'));
      expect(said).toHaveLength(1);
      expect(checklistsAbout('JIRA 1; drop')).toEqual([]);
    });
  });

  describe('when Slack refuses the post', () => {
    it('fails with Slack’s error after its retries, and keeps no checklist state', async () => {
      const job = await kit.runJob(checklistProcessor(deps({ notifier: kit.notifierFor('#deleted') })), failedBackupChecklist('JIRA-404'), {
        jobId: 'cl-no-channel',
        attempts: 2,
        backoffMs: 10,
      });
      expect(await job.getState()).toBe('failed');
      expect(job.attemptsMade).toBe(2);
      expect(job.failedReason).toMatch(/channel_not_found/);
      expect(job.data.anchor).toBeUndefined();
      // The store's keys (`<prefix>:checklist:<channel>:<ts>`), not the checklist queue's own.
      expect(await kit.redis.keys(`${kit.prefix}:checklist:C*`)).toEqual([]);
    });
  });

  describe('when Redis refuses the checklist state after the post', () => {
    it('the retry updates the message it posted instead of posting a second checklist, and keeps the state', async () => {
      let refusals = 1;
      const flaky: ChecklistStore = {
        ...store,
        async create(ref: MessageRef, state) {
          if (refusals-- > 0) throw new Error('OOM command not allowed when used memory > maxmemory');
          await store.create(ref, state);
        },
      };
      const job = await kit.runJob(checklistProcessor(deps({ store: flaky })), failedBackupChecklist('JIRA-500'), {
        jobId: 'cl-flaky-redis',
        attempts: 2,
        backoffMs: 10,
      });
      expect(await job.getState()).toBe('completed');
      expect(job.attemptsMade).toBe(2);
      const posted = checklistsAbout('JIRA-500');
      expect(posted).toHaveLength(1);
      const [message] = posted as [SlackMessage];
      expect(message.channel).toBe(CHANNEL_ID);
      expect(message.updates).toBe(1);
      expect(job.returnvalue).toMatchObject({ ts: message.ts });
      expect(await store.load({ channel: message.channel, ts: message.ts })).toMatchObject({ kind: 'pre-migration' });
    });
  });
});

/** 09:00 UTC on a Wednesday in November: 10:00 in Paris (UTC+01:00), when the morning checklist is read. */
const NOW = new Date('2026-11-18T09:00:00Z');

describe('checklistProcessor, a scheduled checklist', () => {
  it('posts the weekly checklist with the bot’s evidence and keeps its state under the message for 35 days', async () => {
    const { storage, cleanup } = await tempRoot();
    const prefix = `{cl-${randomUUID().slice(0, 8)}}`;
    const notifier = recordingNotifier();
    const checklists = createChecklistStore(kit.redis, prefix);
    const queue = new Queue(`checklist-${randomUUID()}`, { connection: kit.redis, prefix });
    const events = new QueueEvents(queue.name, { connection: kit.redis, prefix });
    const worker = new Worker(
      queue.name,
      checklistProcessor({ config: configWith([shop]), storage, runs: null, retention: null, notifier, store: checklists, log: silentLog, now: () => NOW }),
      { connection: kit.redis, prefix },
    );
    try {
      await events.waitUntilReady();
      const job = await queue.add('checklist', { kind: 'weekly' });
      const result = (await job.waitUntilFinished(events, 30_000)) as { ts: string; passed: number; failed: number };
      const [posted] = notifier.posted;
      // Nothing has expired, but no retention run is recorded either: nothing backs a tick, so neither item passes.
      expect(posted?.text).toBe('Weekly backup checklist — Wed 2026-11-18: 0 of 3 done');
      expect(JSON.stringify(posted?.blocks)).toContain(
        'no retention run recorded in the last 8 days (it is scheduled daily: are the workers running?); nothing past its deadline is left',
      );
      expect(JSON.stringify(posted?.blocks)).toContain('no backup of shop yet');
      const ref = { channel: 'C0INCIDENTS', ts: result.ts };
      const state = await checklists.load(ref);
      expect(state).toMatchObject({ kind: 'weekly', version: 1, subtitle: 'Wed 2026-11-18', shown: { '1': [] } });
      expect(state?.items.map((i) => i.id)).toEqual(['retention-applied', 'newest-lists', 'failures-investigated']);
      const ttl = await kit.redis.ttl(`${prefix}:checklist:C0INCIDENTS:${result.ts}`);
      expect(ttl).toBeGreaterThan(34 * 24 * 3600);
      expect(ttl).toBeLessThanOrEqual(35 * 24 * 3600);
    } finally {
      await worker.close();
      await events.close();
      await queue.obliterate({ force: true });
      await queue.close();
      await cleanup();
    }
  });
});
