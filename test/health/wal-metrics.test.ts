import { describe, expect, it } from 'vitest';
import { createMetrics, evaluateHealth, type WalHealthFacts } from '../../src/health/index.ts';
import { parseExposition, sampleValue } from './exposition.ts';
import { healthyInput } from './fixtures.ts';

const facts = (over: { slotError?: string } = {}): WalHealthFacts => ({
  archive: {
    baseBackups: 1,
    newestSegment: '000000010000000000000006',
    gaps: ['000000010000000000000004'],
    reachesNewest: false,
    window: { from: new Date('2026-11-24T10:00:00Z'), to: new Date('2026-11-24T11:00:00Z') },
    earlier: null,
  },
  slot: over.slotError
    ? { name: 'pgbb_shop', limitBytes: 1024, error: over.slotError }
    : { name: 'pgbb_shop', limitBytes: 1024, exists: true, active: false, walStatus: 'extended', retainedBytes: 4096, safeWalSize: null, keepSizeMb: -1 },
});

async function exposition(walHealth: WalHealthFacts | undefined, metrics = createMetrics({ defaultMetrics: false })) {
  const input = healthyInput(walHealth ? { walHealth } : {});
  metrics.update('shop', { ...input, results: evaluateHealth(input), ...(walHealth ? { walHealth } : {}) });
  return { metrics, families: parseExposition(await metrics.registry.metrics()) };
}

describe('the WAL archive’s metrics', () => {
  it('exports the window’s ends, the gaps and the slot against its limit', async () => {
    const { families } = await exposition(facts());
    const shop = { target: 'shop' };
    expect(sampleValue(families, 'pgbb_wal_window_start_timestamp_seconds', shop)).toBe(Date.parse('2026-11-24T10:00:00Z') / 1000);
    expect(sampleValue(families, 'pgbb_wal_window_end_timestamp_seconds', shop)).toBe(Date.parse('2026-11-24T11:00:00Z') / 1000);
    expect(sampleValue(families, 'pgbb_wal_gaps', shop)).toBe(1);
    expect(sampleValue(families, 'pgbb_wal_slot_retained_bytes', shop)).toBe(4096);
    expect(sampleValue(families, 'pgbb_wal_slot_limit_bytes', shop)).toBe(1024);
    expect(sampleValue(families, 'pgbb_wal_slot_keep_size_unlimited', shop)).toBe(1);
    expect(sampleValue(families, 'pgbb_condition_failing', { target: 'shop', condition: 'wal-gap' })).toBe(1);
    expect(sampleValue(families, 'pgbb_condition_failing', { target: 'shop', condition: 'wal-slot' })).toBe(1);
  });

  it('has no slot figure when the server could not be asked, and no WAL series once the target has no archive', async () => {
    const { metrics, families } = await exposition(facts({ slotError: 'connect ECONNREFUSED' }));
    expect(families.get('pgbb_wal_slot_retained_bytes')?.samples ?? []).toEqual([]);
    expect(sampleValue(families, 'pgbb_wal_gaps', { target: 'shop' })).toBe(1);
    const after = (await exposition(undefined, metrics)).families;
    for (const name of ['pgbb_wal_window_end_timestamp_seconds', 'pgbb_wal_gaps', 'pgbb_wal_slot_limit_bytes']) {
      expect(after.get(name)?.samples ?? [], name).toEqual([]);
    }
  });
});
