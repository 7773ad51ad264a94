import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { serverOf, serverSlotHolders, tryServerSlot } from '../../src/jobs/server-slots.ts';

let redis: Redis;
const prefix = `{t-slots-${randomUUID().slice(0, 8)}}`;

beforeAll(() => {
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  await redis.quit();
});

describe('per-server dump slots', () => {
  it('name a server by host and port, whatever the database, user or password', () => {
    expect(serverOf('postgres://u:secret@DB1.internal:5433/shop')).toBe('db1.internal:5433');
    expect(serverOf('postgres://u@db1.internal/billing')).toBe('db1.internal:5432');
    expect(serverOf('postgresql:///shop?host=%2Fvar%2Frun%2Fpostgresql&port=5434')).toBe('/var/run/postgresql:5434');
  });

  it('give out as many slots as the limit, take the owner’s own back, and free one on release', async () => {
    const one = await tryServerSlot(redis, prefix, 'db1:5432', 1, 'job-a');
    expect(one).not.toBeNull();
    expect(await tryServerSlot(redis, prefix, 'db1:5432', 1, 'job-b')).toBeNull();
    // Another server is not held back by this one.
    const other = await tryServerSlot(redis, prefix, 'db2:5432', 1, 'job-b');
    expect(other).not.toBeNull();
    // job-a retried after its worker died takes its own slot again.
    expect(await tryServerSlot(redis, prefix, 'db1:5432', 1, 'job-a')).not.toBeNull();
    expect(await serverSlotHolders(redis, prefix, 'db1:5432', 1)).toEqual(['job-a']);
    await one?.release();
    const next = await tryServerSlot(redis, prefix, 'db1:5432', 1, 'job-b');
    expect(next).not.toBeNull();
    // With a limit of two, a second job gets the second slot.
    expect(await tryServerSlot(redis, prefix, 'db1:5432', 2, 'job-c')).not.toBeNull();
    expect((await serverSlotHolders(redis, prefix, 'db1:5432', 2)).sort()).toEqual(['job-b', 'job-c']);
    await Promise.all([next?.release(), other?.release()]);
  });
});
