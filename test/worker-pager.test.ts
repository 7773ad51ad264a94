import { fork } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pageStateKey } from '../src/notifications/escalation.ts';
import { superviseWorker } from '../src/worker-supervisor.ts';
import { botPagerKit } from './support/bot-pager.ts';

/**
 * `all`'s worker child in a crash loop is paged by the bot process itself: the worker that delivers every other page
 * is the one that is down. Real Redis, the real escalation and PagerDuty client against the strict Events API stand-in,
 * the real supervisor with stand-in children (test/fixtures/worker-child.mjs); no BullMQ worker runs anywhere here.
 */
const fixture = join(import.meta.dirname, 'fixtures', 'worker-child.mjs');
const key = `pg-backup-bot/_bot/worker-process:${hostname()}`;

describe('the worker-process page', () => {
  const { ctx, pager: kit } = botPagerKit('wpager');

  it('pages when the child keeps dying, without any worker, and resolves once a child has run calmly', async () => {
    const { prefix, queues, log, pager } = kit();
    const told: string[] = [];
    let started = 0;
    // Three deaths reach the longest wait (20, 40, 80 ms); the fourth child stays up and beats.
    const spawn = () => fork(fixture, ++started <= 3 ? ['ready-then-exit', '3'] : ['beat', 'true'], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    const supervisor = superviseWorker({ log, spawn, restartBaseMs: 20, maxRestartMs: 80, calmMs: 400, pager, announce: async (t) => told.push(t) });
    await supervisor.ready;
    try {
      const trigger = await ctx.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'trigger', 10_000);
      expect(trigger.payload?.severity).toBe('critical');
      expect(trigger.payload?.summary).toMatch(/the worker process on .+ keeps dying \(3 times in 10 minutes, the last exited with code 3\)/);
      const resolve = await ctx.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'resolve', 10_000);
      expect(resolve.payload?.summary).toMatch(/has run for 400 ms again/);
      expect(ctx.pd.alerts.get(key)?.status).toBe('resolved');
      // The channel heard the loop with the page, and the end with its resolve.
      const loop = told.find((t) => /it keeps dying/.test(t));
      expect(loop).toMatch(new RegExp(`PagerDuty page queued \\(critical, dedup key ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)\\.$`));
      expect(told.at(-1)).toMatch(/has run for 400 ms \(pid \d+\)\. PagerDuty page resolved \(.+\)\.$/);
      // Delivered by the bot: the queue's jobs for both events are still waiting for a worker, which finds an empty outbox.
      expect(await queues.pagerduty.getJobCountByTypes('waiting')).toBe(2);
      expect(await ctx.redis.exists(pageStateKey(prefix, key))).toBe(0);
    } finally {
      await supervisor.stop();
    }
  });

  it('tries again while PagerDuty is down, and resolves a page an earlier process left', async () => {
    const { prefix, pager } = kit();
    const before = ctx.pd.events.length;
    ctx.pd.failNext(2, 503);
    expect(await pager.down('pg-backup-bot: the worker process keeps dying', { deaths: 7 })).toBe(`PagerDuty page queued (critical, dedup key ${key})`);
    await ctx.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'trigger' && ctx.pd.events.indexOf(e) >= before, 5_000);
    expect(ctx.pd.requests.filter((r) => r.status === 503).length).toBeGreaterThanOrEqual(2);
    // Paged once per episode: a second loop while it is open adds nothing.
    expect(await pager.down('again', {})).toMatch(/already paged/);
    pager.stop();

    // A new process (a restart of the bot) finds the open page in Redis and resolves it once its child is calm.
    const later = kit({ prefix }).pager;
    expect(await later.up('calm again')).toBe(`PagerDuty page resolved (${key})`);
    await ctx.pd.waitFor((e) => e.dedup_key === key && e.event_action === 'resolve' && e.payload?.summary === 'calm again', 5_000);
    // Nothing open: no resolve is sent for a page that never was.
    expect(await later.up('calm again')).toBeNull();
    later.stop();
  });
});
