import { describe, expect, it } from 'vitest';
import { evaluateHealth, nagiosReport } from '../../src/health/index.ts';
import { healthyInput, result } from './fixtures.ts';

describe('nagiosReport', () => {
  it('exits 0 with one OK line per condition when all is well', () => {
    const report = nagiosReport([{ target: 'shop', results: evaluateHealth(healthyInput()) }]);
    expect(report.exitCode).toBe(0);
    expect(report.lines).toHaveLength(9);
    expect(report.lines[0]).toBe('OK shop stale: newest backup 3 h 0 min old (2026-11-24 09:00 UTC), limit 25 h');
    for (const line of report.lines) expect(line).toMatch(/^OK shop [a-z-]+: \S/);
  });

  it('exits 1 on any warning', () => {
    const report = nagiosReport([{ target: 'shop', results: [result('stale', 'ok', 'critical'), result('disk', 'failing', 'warning', '19 % free')] }]);
    expect(report.exitCode).toBe(1);
    expect(report.lines).toEqual(['WARNING shop disk: 19 % free', 'OK shop stale: e']);
  });

  it('exits 2 on any critical, and counts error severity as critical', () => {
    const critical = nagiosReport([
      { target: 'shop', results: [result('disk', 'failing', 'warning')] },
      { target: 'billing', results: [result('stale', 'failing', 'critical', 'no backup of billing yet')] },
    ]);
    expect(critical.exitCode).toBe(2);
    expect(critical.lines[0]).toBe('CRITICAL billing stale: no backup of billing yet');
    const error = nagiosReport([{ target: 'shop', results: [result('backup-failing', 'failing', 'error', 'boom')] }]);
    expect(error).toEqual({ lines: ['CRITICAL shop backup-failing: boom'], exitCode: 2 });
  });

  it('puts the worst line first and keeps target order within a state', () => {
    const report = nagiosReport([
      { target: 'a', results: [result('size', 'ok', 'warning'), result('slow', 'failing', 'warning')] },
      { target: 'b', results: [result('stale', 'failing', 'critical'), result('slow', 'failing', 'warning')] },
    ]);
    expect(report.lines.map((l) => l.split(':')[0])).toEqual(['CRITICAL b stale', 'WARNING a slow', 'WARNING b slow', 'OK a size']);
  });

  it('keeps pipes and newlines of error text out of the plugin output', () => {
    const report = nagiosReport([{ target: 'shop', results: [result('backup-failing', 'failing', 'error', 'pg_dump: error | detail\n  second line')] }]);
    expect(report.lines).toEqual(['CRITICAL shop backup-failing: pg_dump: error / detail second line']);
  });

  it('an OK that judged nothing says so (no restore test recorded is not a restore test that passed)', () => {
    const none = { ...result('restore-test-failing', 'ok', 'critical', 'no restore test recorded'), unjudged: true as const };
    const report = nagiosReport([{ target: 'shop', results: [result('stale', 'ok', 'critical', 'newest backup 3 h old'), none] }]);
    expect(report).toEqual({
      lines: ['OK shop stale: newest backup 3 h old', 'OK shop restore-test-failing: not judged: no restore test recorded'],
      exitCode: 0,
    });
    // Evidence that says so already is not prefixed twice.
    const gap = { ...result('wal-gap', 'ok', 'critical', 'not checked: the archive is not kept here'), unjudged: true as const };
    expect(nagiosReport([{ target: 'shop', results: [gap] }]).lines).toEqual(['OK shop wal-gap: not checked: the archive is not kept here']);
  });

  it('exits 0 with no lines when there is nothing to check', () => {
    expect(nagiosReport([])).toEqual({ lines: [], exitCode: 0 });
  });
});
