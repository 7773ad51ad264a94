import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { startPresence, watchWorkers } from '../src/worker-presence.ts';
import { botPagerKit } from './support/bot-pager.ts';

/**
 * With no worker process running anywhere, nothing would ever be backed up, checked or paged, and the bot would say
 * nothing: the bot watches the workers' beats in Redis and pages itself. Real Redis, the real escalation and PagerDuty
 * client against the strict Events API stand-in; the waits are shortened, the logic is the one `npm start` runs.
 */
const KEY = 'pg-backup-bot/_bot/workers';

describe('watching for running workers', () => {
  const { ctx, pager: pagerOn } = botPagerKit('presence');

  /** One bot process's watch, on a prefix of its own unless given. */
  function bot(prefix?: string) {
    const { prefix: p, log, pager } = pagerOn({ condition: 'workers', ...(prefix ? { prefix } : {}) });
    const told: string[] = [];
    const watch = watchWorkers({ redis: ctx.redis, prefix: p, pager, announce: async (t) => told.push(t), log, intervalMs: 60_000, missingMs: 300 });
    return { prefix: p, told, log, watch, pager };
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('pages once when no worker has run for the limit, tells the channel once, and resolves when one beats', async () => {
    const a = bot();
    // A second bot process on the same Redis: one page, one message.
    const b = bot(a.prefix);
    await a.watch.check();
    expect(a.told).toEqual([]); // not yet: the limit counts from the bot's start
    await sleep(350);
    await a.watch.check();
    await b.watch.check();
    const trigger = await ctx.pd.waitFor((e) => e.dedup_key === KEY && e.event_action === 'trigger', 5_000);
    expect(trigger.payload?.severity).toBe('critical');
    expect(trigger.payload?.summary).toMatch(
      /^pg-backup-bot: no worker process has run for \d+ ms \(none since this bot started at .+\): no backup, restore test, health check or page runs$/,
    );
    expect([...a.told, ...b.told]).toHaveLength(1);
    expect(a.told[0]).toMatch(
      /^:rotating_light: No worker process of pg-backup-bot has run for \d+ ms \(none since this bot started at .+\)\. No backup, restore test, health check or page runs until one does: start one \(`pg-backup-bot worker`, or `npm start`\)/,
    );
    expect(a.told[0]).toMatch(/PagerDuty page queued \(critical, dedup key pg-backup-bot\/_bot\/workers\)\.$/);
    // Checked again while still down: nothing more.
    await a.watch.check();
    expect(a.told).toHaveLength(1);

    // A worker starts: its beat resolves the page, and the channel hears which worker is back, once.
    const worker = startPresence({ redis: ctx.redis, prefix: a.prefix, running: () => true, log: a.log });
    try {
      await sleep(50);
      await b.watch.check();
      await a.watch.check();
      const resolve = await ctx.pd.waitFor((e) => e.dedup_key === KEY && e.event_action === 'resolve', 5_000);
      expect(resolve.payload?.summary).toBe(`pg-backup-bot: a worker process runs again (${hostname()}:${process.pid})`);
      const back = [...a.told, ...b.told].filter((t) => t.startsWith(':white_check_mark:'));
      expect(back).toEqual([
        `:white_check_mark: A worker process of pg-backup-bot runs again (${hostname()}:${process.pid}). PagerDuty page resolved (${KEY}).`,
      ]);
    } finally {
      await worker.stop();
    }
    // Its beat is gone with it: after the limit, the watch pages again, naming the last worker seen.
    await sleep(350);
    await a.watch.check();
    expect(a.told.at(-1)).toMatch(new RegExp(`the last one, ${hostname()}:${process.pid}, was seen at`));
    a.watch.stop();
    b.watch.stop();
    a.pager.stop();
    b.pager.stop();
  });

  it('does not page while a worker beats, nor for a worker whose workers stopped beating only briefly', async () => {
    const a = bot();
    let running = true;
    const worker = startPresence({ redis: ctx.redis, prefix: a.prefix, running: () => running, log: a.log, intervalMs: 100 });
    try {
      await sleep(400);
      await a.watch.check();
      running = false; // its workers stopped: no more beats; the last one stays fresh for a minute
      await sleep(200);
      await a.watch.check();
      expect(a.told).toEqual([]);
      expect(ctx.pd.events.filter((e) => e.dedup_key === KEY && e.payload?.summary?.includes(a.prefix))).toEqual([]);
    } finally {
      await worker.stop();
      a.watch.stop();
      a.pager.stop();
    }
  });
});
