import { describe, expect, it } from 'vitest';
import { receiverBackoff } from '../../../src/postgres/pitr/receiver.ts';

describe('the WAL receiver’s restart backoff', () => {
  it('is capped at a quarter of the target’s RPO objective (a minute for the default hour, never under 5 s)', () => {
    expect(receiverBackoff(3600)).toEqual({ minMs: 1000, maxMs: 60_000 });
    // A 60-second objective: restarts after a failover wait at most 15 s, not a minute that alone would exceed it.
    expect(receiverBackoff(60)).toEqual({ minMs: 1000, maxMs: 15_000 });
    expect(receiverBackoff(10)).toEqual({ minMs: 1000, maxMs: 5000 });
    expect(receiverBackoff(7 * 86_400).maxMs).toBe(60_000);
  });
});
