import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { walLeaseKey } from '../../src/jobs/wal-lease.ts';
import { readWalState, walStateKey } from '../../src/jobs/wal-state.ts';

describe('readWalState', () => {
  const redis = new Redis(inject('redisUrl'));
  afterAll(() => redis.disconnect());
  const prefix = `{pgbbt${randomBytes(3).toString('hex')}}`;
  const up = { holder: 'worker-1 pid 42', receiver: 'up', since: '2026-12-04T10:00:00.000Z', lastArchived: '000000010000000000000003' };

  it('is the holder’s word while it holds the lease', async () => {
    await redis.hset(walStateKey(prefix, 'a'), up);
    await redis.set(walLeaseKey(prefix, 'a'), 'worker-1 pid 42 abc', 'PX', 30_000);
    expect(await readWalState(redis, prefix, 'a')).toEqual(up);
  });

  it('is down when the holder that said "up" no longer holds the lease (it died): its "up" is not repeated', async () => {
    await redis.hset(walStateKey(prefix, 'b'), up);
    expect(await readWalState(redis, prefix, 'b')).toEqual({
      ...up,
      receiver: 'down',
      error: "no worker holds the WAL lease: its last holder (worker-1 pid 42) died or lost Redis; start a worker, or check the workers' logs",
    });
  });

  it('is down since the dead holder’s last sign of life, not since the stream came up (QA: the grace never applied)', async () => {
    await redis.hset(walStateKey(prefix, 'c'), { ...up, rpoMeasuredAt: '2026-12-04T10:16:02.000Z', lastArchivedAt: '2026-12-04T10:12:00.000Z' });
    expect(await readWalState(redis, prefix, 'c')).toMatchObject({ receiver: 'down', since: '2026-12-04T10:16:02.000Z' });
  });
});
