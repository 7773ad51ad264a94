import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NOT_CONFIGURED, createEscalation, dedupKey, outboxKey } from '../../src/notifications/escalation.ts';
import type { PagerJobData } from '../../src/jobs/queues.ts';
import { cappedBackoff } from '../../src/workers/pagerduty-worker.ts';

describe('escalation', () => {
  let redis: Redis;
  let queue: Queue<PagerJobData>;
  const prefix = `{esc-${randomUUID().slice(0, 8)}}`;

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
    queue = new Queue<PagerJobData>('pagerduty', { connection: redis, prefix });
  });

  afterAll(async () => {
    await queue.close();
    await redis.quit();
  });

  it('pages once per episode and resolves once when the condition passes', async () => {
    const esc = createEscalation({ redis, queue, prefix, enabled: true, source: 'test' });
    const info = { summary: 'Backup of shop failed: boom', severity: 'error' as const, details: { jobId: 'j1' } };
    expect(await esc.failed('shop', 'backup', info)).toMatch(/PagerDuty page queued \(error, dedup key pg-backup-bot\/shop\/backup\)/);
    expect(await esc.failed('shop', 'backup', info)).toMatch(/already paged/);
    expect(await esc.passed('shop', 'backup', { summary: 'ok again' })).toMatch(/resolved/);
    expect(await esc.passed('shop', 'backup', { summary: 'ok again' })).toBeNull();
    const outbox = (await redis.lrange(outboxKey(prefix, dedupKey('shop', 'backup')), 0, -1)).map((e) => JSON.parse(e) as { action: string });
    expect(outbox.map((e) => e.action)).toEqual(['trigger', 'resolve']);
    expect(JSON.stringify(outbox)).not.toMatch(/routing/i); // the key is a secret: added only when sending
    expect(await queue.count()).toBe(2);
  });

  it('updates the open alert when the condition grows worse or is another episode of it; a new wording alone sends nothing (QA, second reader)', async () => {
    const esc = createEscalation({ redis, queue, prefix, enabled: true, source: 'test' });
    const page = (summary: string, severity: 'warning' | 'error' | 'critical', episode?: string) =>
      esc.failed('shop', 'damaged', { summary, severity, details: {}, episode });
    expect(await page('1 backup damaged: its roles file only', 'error', 'set-a')).toMatch(/page queued/);
    // The same episode in other words (a figure, a newer id): nothing sent, so an incident resolved by hand stays so.
    expect(await page('1 backup damaged: its roles file only (scrubbed again)', 'error', 'set-a')).toMatch(/already paged/);
    // Another set of damaged backups: the open alert updated at once.
    expect(await page('2 backups damaged, one its database archive', 'error', 'set-b')).toBe(
      "PagerDuty's open alert updated (error, dedup key pg-backup-bot/shop/damaged)",
    );
    // Worse: updated too, whatever the episode.
    expect(await page('2 backups damaged, one its database archive', 'critical', 'set-b')).toMatch(/open alert updated \(critical/);
    expect(await page('2 backups damaged', 'error', 'set-b')).toMatch(/already paged/);
    expect(await esc.passed('shop', 'damaged', { summary: 'none damaged' })).toMatch(/resolved/);
    const outbox = (await redis.lrange(outboxKey(prefix, dedupKey('shop', 'damaged')), 0, -1)).map((e) => JSON.parse(e) as { action: string; summary: string });
    expect(outbox.map((e) => [e.action, e.summary])).toEqual([
      ['trigger', '1 backup damaged: its roles file only'],
      ['trigger', '2 backups damaged, one its database archive'],
      ['trigger', '2 backups damaged, one its database archive'],
      ['resolve', 'none damaged'],
    ]);
    // A condition without episodes (an off-site copy's failure naming each new backup) is paged once.
    expect(await esc.failed('shop', 'offsite-copy', { summary: 'copy of shop-1 failed', severity: 'warning', details: {} })).toMatch(/page queued/);
    expect(await esc.failed('shop', 'offsite-copy', { summary: 'copy of shop-2 failed', severity: 'warning', details: {} })).toMatch(/already paged/);
  });

  it('says plainly that nobody was paged when PagerDuty is not configured', async () => {
    const esc = createEscalation({ redis, queue, prefix: `${prefix}-off`, enabled: false, source: 'test' });
    expect(await esc.failed('shop', 'backup', { summary: 's', severity: 'error', details: {} })).toBe(NOT_CONFIGURED);
    expect(NOT_CONFIGURED).toMatch(/not configured.*nobody was paged/);
  });

  it('backs off exponentially, capped at five minutes', () => {
    expect(cappedBackoff(1)).toBe(2000);
    expect(cappedBackoff(3)).toBe(8000);
    expect(cappedBackoff(30)).toBe(300_000);
  });
});
