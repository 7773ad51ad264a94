import { describe, expect, it } from 'vitest';
import { createMetrics, evaluateHealth, rpoCondition } from '../../src/health/index.ts';
import { parseExposition, sampleValue } from './exposition.ts';
import { HOUR, NOW, ago, healthyInput, pick } from './fixtures.ts';

const up = { receiver: 'up' as const, since: ago(HOUR).toISOString() };
const state = (extra: Record<string, string>) => ({ ...up, rpoObjectiveSeconds: '60', ...extra });

describe('rpoCondition', () => {
  it('passes at 0 when the archive holds everything the server wrote, naming the position', () => {
    const r = rpoCondition('shop', NOW, state({ rpoMeasuredAt: ago(2000).toISOString(), currentLsn: '0/3000148', archivedLsn: '0/3000148' }));
    expect(r).toMatchObject({ condition: 'rpo', severity: 'critical', status: 'ok', value: 0 });
    expect(r.evidence).toBe('0 s (objective 60 s): the archive holds everything the server has written (up to 0/3000148)');
  });

  it('says when the worker’s clock and the server’s differ by more than a second, and which way', () => {
    const at = (skew: string) =>
      rpoCondition('shop', NOW, state({ rpoMeasuredAt: ago(2000).toISOString(), archivedLsn: '0/3000148', clockSkewMs: skew })).evidence;
    expect(at('800')).toBe('0 s (objective 60 s): the archive holds everything the server has written (up to 0/3000148)');
    expect(at('3200')).toContain(
      "; the worker's clock is 3 s behind the server's (the archive's times are read by the server's clock, or corrected by this difference; ages and the RPO by the worker's): set both hosts' clocks by NTP",
    );
    expect(at('-2100')).toContain("the worker's clock is 2 s ahead of the server's");
  });

  it('counts from when WAL went missing from the archive, to the check’s own time, and keeps the worker’s disk apart', () => {
    const s = state({
      rpoMeasuredAt: ago(2000).toISOString(),
      rpoBehindSince: ago(20_000).toISOString(),
      currentLsn: '0/3000200',
      archivedLsn: '0/3000148',
      flushedLsn: '0/3000200',
    });
    const r = rpoCondition('shop', NOW, s);
    expect(r).toMatchObject({ status: 'ok', value: 20, summary: 'The RPO of shop is 20 s, within its objective 60 s' });
    expect(r.evidence).toMatch(
      /^20 s \(objective 60 s\): the server is at 0\/3000200, the archive holds up to 0\/3000148, WAL missing from it since .*; the receiver's spool on the worker holds up to 0\/3000200, not archived yet$/,
    );
    const over = rpoCondition('shop', NOW, { ...s, rpoBehindSince: ago(61_000).toISOString() });
    expect(over).toMatchObject({ status: 'failing', value: 61 });
    expect(over.summary).toBe('The RPO of shop is 61 s, over its objective 60 s: that much committed data would be lost if the server vanished now');
  });

  it('is unknown, never 0, when the server cannot be asked: passes only until that has lasted the objective', () => {
    const failed = (measuredAgoMs: number) =>
      rpoCondition(
        'shop',
        NOW,
        state({ rpoMeasuredAt: ago(measuredAgoMs).toISOString(), rpoError: 'the server could not be asked for its WAL position: connection refused' }),
      );
    const brief = failed(10_000);
    expect(brief).toMatchObject({ status: 'ok', summary: 'The RPO of shop cannot be measured right now' });
    expect(brief.value).toBeUndefined();
    expect(brief.evidence).toMatch(
      /^unknown since .* \(objective 60 s\): the server could not be asked for its WAL position: connection refused \(fails when unknown/,
    );
    expect(failed(120_000)).toMatchObject({ status: 'failing', summary: 'The RPO of shop cannot be measured' });
    // A measurement the worker stopped refreshing is no measurement either.
    const stale = rpoCondition('shop', NOW, state({ rpoMeasuredAt: ago(5 * 60_000).toISOString() }));
    expect(stale).toMatchObject({ status: 'failing' });
    expect(stale.evidence).toMatch(/the worker stopped measuring it/);
    // What is known already exceeds the objective: failing at once, with the lower bound.
    const known = rpoCondition('shop', NOW, state({ rpoMeasuredAt: ago(5000).toISOString(), rpoBehindSince: ago(90_000).toISOString(), rpoError: 'timeout' }));
    expect(known).toMatchObject({ status: 'failing', summary: 'The RPO of shop is at least 90 s, over its objective 60 s' });
    expect(rpoCondition('shop', NOW, null)).toMatchObject({ status: 'failing', summary: 'The RPO of shop cannot be measured' });
    const notStarted = { receiver: 'not started' as const, since: ago(HOUR).toISOString(), error: 'pg_receivewal is not installed (postgresql-client-15)' };
    expect(rpoCondition('shop', NOW, notStarted)).toMatchObject({
      status: 'failing',
      evidence: 'unknown: the WAL archive of shop is not running (pg_receivewal is not installed (postgresql-client-15))',
    });
  });

  it('reaches evaluateHealth and the metrics: the RPO and its objective, no RPO series while unknown', async () => {
    const measured = state({ rpoMeasuredAt: ago(1000).toISOString(), rpoBehindSince: ago(75_000).toISOString(), currentLsn: '0/5', archivedLsn: '0/4' });
    const input = { ...healthyInput(), wal: { state: measured } };
    const results = evaluateHealth(input);
    expect(pick(results, 'rpo')).toMatchObject({ status: 'failing', value: 75 });
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.update('shop', { ...input, results, rpoObjectiveSeconds: 60, now: NOW });
    let families = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(families, 'pgbb_wal_rpo_seconds', { target: 'shop' })).toBe(75);
    expect(sampleValue(families, 'pgbb_wal_rpo_objective_seconds', { target: 'shop' })).toBe(60);
    expect(sampleValue(families, 'pgbb_condition_failing', { target: 'shop', condition: 'rpo' })).toBe(1);
    const unknown = { ...healthyInput(), wal: { state: state({ rpoError: 'timeout' }) } };
    metrics.update('shop', { ...unknown, results: evaluateHealth(unknown), rpoObjectiveSeconds: 60, now: NOW });
    families = parseExposition(await metrics.registry.metrics());
    expect(families.get('pgbb_wal_rpo_seconds')?.samples ?? []).toHaveLength(0);
  });
});
