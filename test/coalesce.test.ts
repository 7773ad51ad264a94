import { describe, expect, it } from 'vitest';
import { coalesceFresh } from '../src/coalesce.ts';

/** A read whose answers the test releases one by one; `started` counts the reads begun. */
function gatedRead() {
  const gates: Array<(v: string) => void> = [];
  let started = 0;
  const read = (key: string) =>
    new Promise<string>((resolve) => {
      started++;
      gates.push((v) => resolve(`${key}:${v}`));
    });
  return { read, release: (v: string) => gates.shift()?.(v), started: () => started };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('coalesceFresh', () => {
  it('serves everyone who asked during a read with one next read, never with the read already running', async () => {
    const g = gatedRead();
    const shared = coalesceFresh(g.read);
    const first = shared('list');
    const later = [shared('list'), shared('list'), shared('list')];
    expect(g.started()).toBe(1);
    g.release('old'); // what storage held before the three asked
    expect(await first).toBe('list:old');
    await tick();
    expect(g.started()).toBe(2);
    g.release('new');
    expect(await Promise.all(later)).toEqual(['list:new', 'list:new', 'list:new']);
    // Idle again: the next call reads at once.
    const after = shared('list');
    expect(g.started()).toBe(3);
    g.release('x');
    expect(await after).toBe('list:x');
  });

  it('keeps keys apart and passes a failed read on to the callers of that read only', async () => {
    let n = 0;
    const shared = coalesceFresh(async (key: string) => {
      n++;
      if (key === 'bad' && n === 1) throw new Error('storage down');
      return key;
    });
    const [bad, good] = await Promise.allSettled([shared('bad'), shared('good')]);
    expect(bad.status).toBe('rejected');
    expect(good).toEqual({ status: 'fulfilled', value: 'good' });
    expect(await shared('bad')).toBe('bad');
  });
});
