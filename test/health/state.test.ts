import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createHealthState } from '../../src/health/index.ts';
import { HOUR, NOW, result } from './fixtures.ts';

const later = (hours: number) => new Date(NOW.getTime() + hours * HOUR);

describe('createHealthState', () => {
  let redis: Redis;
  let prefix: string;

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { maxRetriesPerRequest: null });
  });
  beforeEach(() => {
    prefix = `{health-${randomUUID()}}`;
  });
  afterAll(async () => {
    await redis.quit();
  });

  it('counts a first failing observation as a change, a first ok one not', async () => {
    const state = createHealthState(redis, prefix);
    const applied = await state.apply('shop', [result('stale', 'failing', 'critical'), result('disk', 'ok', 'warning')], NOW);
    expect(applied.map((a) => [a.result.condition, a.previous, a.changed, a.since])).toEqual([
      ['stale', null, true, NOW.toISOString()],
      ['disk', null, false, NOW.toISOString()],
    ]);
  });

  it('does not count a repeated failure, counts the recovery, and keeps since while the status holds', async () => {
    const state = createHealthState(redis, prefix);
    await state.apply('shop', [result('size', 'failing', 'warning', '146 MB')], NOW);
    const [again] = await state.apply('shop', [result('size', 'failing', 'warning', '150 MB')], later(1));
    expect(again).toMatchObject({ previous: 'failing', changed: false, since: NOW.toISOString() });
    const [recovered] = await state.apply('shop', [result('size', 'ok', 'warning', '380 MB')], later(2));
    expect(recovered).toMatchObject({ previous: 'failing', changed: true, since: later(2).toISOString() });
    expect(await state.read('shop')).toEqual({
      size: { status: 'ok', since: later(2).toISOString(), lastChecked: later(2).toISOString(), evidence: '380 MB' },
    });
  });

  it('remembers since across a restart', async () => {
    await createHealthState(redis, prefix).apply('shop', [result('slow', 'failing', 'warning')], NOW);
    const restarted = createHealthState(redis, prefix);
    const [still] = await restarted.apply('shop', [result('slow', 'failing', 'warning')], later(5));
    expect(still).toMatchObject({ previous: 'failing', changed: false, since: NOW.toISOString() });
    expect((await restarted.read('shop')).slow).toMatchObject({ since: NOW.toISOString(), lastChecked: later(5).toISOString() });
  });

  it('keeps targets apart, in the documented hash', async () => {
    const state = createHealthState(redis, prefix);
    await state.apply('shop', [result('disk', 'failing', 'warning')], NOW);
    const [other] = await state.apply('billing', [result('disk', 'failing', 'warning')], NOW);
    expect(other?.changed).toBe(true);
    expect(await redis.hkeys(`${prefix}:health:shop`)).toEqual(['disk']);
    expect(await state.read('nobody')).toEqual({});
  });

  it('lets only one of two concurrent checks see the change', async () => {
    const a = createHealthState(redis, prefix);
    const b = createHealthState(redis, prefix);
    const runs = await Promise.all([
      a.apply('shop', [result('stale', 'failing', 'critical')], NOW),
      b.apply('shop', [result('stale', 'failing', 'critical')], NOW),
    ]);
    expect(runs.flat().filter((r) => r.changed)).toHaveLength(1);
  });

  it('counts quiet → loud as a change (the first backup became overdue), and remembers a quiet failure as such', async () => {
    const state = createHealthState(redis, prefix);
    const quiet = { ...result('stale', 'failing', 'warning'), quiet: true as const };
    const [first] = await state.apply('shop', [quiet], NOW);
    expect(first).toMatchObject({ previous: null, previousQuiet: false, changed: true });
    expect((await state.read('shop')).stale).toMatchObject({ status: 'failing', quiet: true });
    const [still] = await state.apply('shop', [quiet], later(1));
    expect(still).toMatchObject({ previousQuiet: true, changed: false });
    const [loud] = await state.apply('shop', [result('stale', 'failing', 'critical')], later(2));
    expect(loud).toMatchObject({ previous: 'failing', previousQuiet: true, changed: true, since: NOW.toISOString() });
    const [cleared] = await state.apply('shop', [result('stale', 'ok', 'critical')], later(3));
    expect(cleared).toMatchObject({ previous: 'failing', previousQuiet: false, changed: true });
  });

  it('treats an unreadable stored value as never seen', async () => {
    await redis.hset(`${prefix}:health:shop`, 'stale', 'not json');
    const state = createHealthState(redis, prefix);
    expect(await state.read('shop')).toEqual({});
    const [r] = await state.apply('shop', [result('stale', 'failing', 'critical')], NOW);
    expect(r).toMatchObject({ previous: null, changed: true });
  });
  it('keeps the disk need of the check that began last, whichever wrote last (two hosts; second reader)', async () => {
    const state = createHealthState(redis, prefix);
    const full = { ok: false, at: NOW, reason: 'The backup disk is full (local:/b)', jobId: '9' };
    // The newer check (no run out of space any more) writes first; the older one, slow, writes after it.
    await state.putDiskNeed('local:/b', { target: 'shop', next: { what: 'the newest backup (x)', bytes: 10 }, ranOut: null }, later(1));
    await state.putDiskNeed('local:/b', { target: 'shop', next: { what: 'the newest backup (x)', bytes: 10 }, ranOut: full }, later(0));
    await state.putDiskNeed('local:/b', { target: 'crm', next: null, ranOut: full }, later(0));
    const needs = await state.diskNeeds('local:/b');
    expect(needs.find((n) => n.target === 'shop')?.ranOut).toBeNull();
    expect(needs.find((n) => n.target === 'crm')?.ranOut).toEqual(full);
  });
});
