import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startEphemeralRedis } from '../../src/dev/ephemeral.ts';
import { holdLease, type Lease, walLeaseKey } from '../../src/jobs/wal-lease.ts';
import { silentLog } from '../support/postgres-helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const timing = { ttlMs: 1500, renewMs: 500, retryMs: 200 };

/** A lease on a real Redis, with the events a holder acts on recorded in order. */
function watched(redis: Redis, key: string, token: string) {
  const events: Array<{ what: 'acquired' | 'lost'; at: number; why?: string }> = [];
  const lease = holdLease({
    redis,
    key,
    token,
    timing,
    log: silentLog,
    onAcquired: () => events.push({ what: 'acquired', at: Date.now() }),
    onLost: (why) => events.push({ what: 'lost', at: Date.now(), why }),
  });
  return { lease, events };
}

async function until(what: string, f: () => boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('holdLease', () => {
  const redis = new Redis(inject('redisUrl'));
  const leases: Lease[] = [];
  afterAll(async () => {
    await Promise.all(leases.map((l) => l.stop()));
    redis.disconnect();
  });
  const key = () => walLeaseKey(`{pgbbt${randomBytes(3).toString('hex')}}`, 'app');

  it('gives the lease to one of two, keeps it renewed past its TTL, and hands it over on release', async () => {
    const k = key();
    const a = watched(redis, k, 'a');
    leases.push(a.lease);
    await until('a holds it', () => a.lease.holding());
    const b = watched(redis, k, 'b');
    leases.push(b.lease);
    await sleep(timing.ttlMs * 2);
    expect(a.events.map((e) => e.what)).toEqual(['acquired']);
    expect(b.events).toEqual([]);
    expect(await redis.get(k)).toBe('a');
    const pttl = await redis.pttl(k);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(timing.ttlMs);
    const released = Date.now();
    await a.lease.stop();
    await until('b holds it', () => b.lease.holding());
    // Released, not expired: b takes it within its retry, not after the TTL.
    expect((b.events[0]?.at ?? 0) - released).toBeLessThan(timing.ttlMs);
    expect(await redis.get(k)).toBe('b');
  });

  it('stops holding at the first renewal that finds another token, before it would have expired', async () => {
    const k = key();
    const a = watched(redis, k, 'a');
    leases.push(a.lease);
    await until('a holds it', () => a.lease.holding());
    const stolen = Date.now();
    await redis.set(k, 'intruder', 'PX', 60_000);
    await until('a lost it', () => a.events.some((e) => e.what === 'lost'));
    const lost = a.events.find((e) => e.what === 'lost');
    expect(lost?.why).toBe('another worker holds it now, or it expired');
    // At its next renewal, before the TTL would have run out: the bound is the TTL, not the renewal interval plus a
    // guess at the machine's delay (CI under load: 607 ms against renewMs + 100).
    expect((lost?.at ?? 0) - stolen).toBeLessThan(timing.ttlMs);
    expect(a.lease.holding()).toBe(false);
    // Its release deletes only its own token: the intruder's stays.
    await a.lease.stop();
    expect(await redis.get(k)).toBe('intruder');
  });

  it('stops holding when Redis goes away, within two renewals: before the TTL could let another start', async () => {
    const own = await startEphemeralRedis();
    const r = new Redis(own.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    r.on('error', () => undefined);
    try {
      const a = watched(r, key(), 'a');
      leases.push(a.lease);
      await until('a holds it', () => a.lease.holding());
      await sleep(timing.renewMs * 1.5);
      const gone = Date.now();
      await own.stop();
      await until('a lost it', () => a.events.some((e) => e.what === 'lost'));
      const lost = a.events.find((e) => e.what === 'lost');
      expect(lost?.why).toMatch(/^renewal failed: /);
      // The last renewal Redis answered was sent less than renewMs before it went: that lease lives until about
      // gone − renewMs + ttlMs; the holder gave up within 2 × renewMs of the outage, a third of the TTL earlier.
      expect((lost?.at ?? 0) - gone).toBeLessThanOrEqual(2 * timing.renewMs + 100);
      expect(a.lease.holding()).toBe(false);
    } finally {
      r.disconnect();
    }
  });
});
