import { describe, expect, it } from 'vitest';
import { awaitBaseWal } from '../../../src/postgres/pitr/base-wal.ts';
import type { WalEntry } from '../../../src/postgres/pitr/wal-store.ts';

const store = (names: string[]) => ({ list: async () => names.map((name) => ({ name }) as WalEntry) });
const base = { startLsn: '0/3000028', endLsn: '0/4000100', timeline: 1 };

describe('whether a base backup’s WAL is in the archive', () => {
  it('is archived when every segment from its start to its end is', async () => {
    expect(await awaitBaseWal(store(['000000010000000000000003', '000000010000000000000004']), base, { timeoutMs: 0 })).toEqual({ state: 'archived' });
  });

  it('is pending while a segment is missing and nothing newer is archived, naming it', async () => {
    expect(await awaitBaseWal(store(['000000010000000000000003']), base, { timeoutMs: 30, pollMs: 10 })).toEqual({
      state: 'pending',
      missing: '000000010000000000000004',
    });
  });

  it('is lost when a newer segment is archived and one it needs is not (the stream began after it)', async () => {
    expect(await awaitBaseWal(store(['000000010000000000000004', '000000010000000000000005']), base, { timeoutMs: 1000 })).toEqual({
      state: 'lost',
      missing: '000000010000000000000003',
    });
  });

  it('waits for the archive to catch up', async () => {
    const names = ['000000010000000000000003'];
    setTimeout(() => names.push('000000010000000000000004'), 50);
    expect(await awaitBaseWal(store(names), { ...base, startLsn: '0/3000028' }, { timeoutMs: 2000, pollMs: 10 })).toEqual({ state: 'archived' });
  });

  it('stops waiting at once when the job is cancelled, and says what is missing', async () => {
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 30);
    const t0 = Date.now();
    expect(await awaitBaseWal(store(['000000010000000000000003']), base, { timeoutMs: 60_000, pollMs: 10_000, signal: abort.signal })).toEqual({
      state: 'pending',
      missing: '000000010000000000000004',
    });
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
