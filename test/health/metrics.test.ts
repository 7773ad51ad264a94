import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, evaluateHealth } from '../../src/health/index.ts';
import { parseExposition, sampleValue } from './exposition.ts';
import { HOUR, MB, NOW, ago, healthyInput, makeManifest } from './fixtures.ts';

const queueDepths = {
  backup: { waiting: 2, active: 1, failed: 3, delayed: 0 },
  'restore-test': { waiting: 0, active: 0, failed: 1, delayed: 4 },
};

function updatedMetrics(options: { defaultMetrics?: boolean } = { defaultMetrics: false }) {
  const metrics = createMetrics(options);
  const input = healthyInput({
    disk: { totalBytes: 100, freeBytes: 10 },
    lastRestoreTest: { passed: false, at: ago(HOUR), problems: ['x'], backupId: 'shop-20261124T090000Z', durationMs: 95_500 },
  });
  metrics.update('shop', { ...input, results: evaluateHealth(input), queueDepths });
  return metrics;
}

describe('createMetrics', () => {
  it('exposes the health gauges of a target in valid text format', async () => {
    const families = parseExposition(await updatedMetrics().registry.metrics());
    const shop = { target: 'shop' };
    // The newest of healthyInput's daily backups started 3 h before NOW, took 10 min and stored 384 MB.
    expect(sampleValue(families, 'pgbb_last_good_backup_timestamp_seconds', shop)).toBe((NOW.getTime() - 3 * HOUR) / 1000);
    expect(sampleValue(families, 'pgbb_last_backup_duration_seconds', shop)).toBe(600);
    expect(sampleValue(families, 'pgbb_last_backup_size_bytes', shop)).toBe(384 * MB);
    expect(sampleValue(families, 'pgbb_restore_test_passed', shop)).toBe(0);
    expect(sampleValue(families, 'pgbb_restore_test_duration_seconds', shop)).toBe(95.5);
    expect(sampleValue(families, 'pgbb_condition_failing', { target: 'shop', condition: 'disk' })).toBe(1);
    expect(sampleValue(families, 'pgbb_condition_failing', { target: 'shop', condition: 'stale' })).toBe(0);
    expect(families.get('pgbb_condition_failing')?.samples).toHaveLength(9);
    expect(sampleValue(families, 'pgbb_queue_jobs', { queue: 'backup', state: 'failed' })).toBe(3);
    expect(sampleValue(families, 'pgbb_queue_jobs', { queue: 'restore-test', state: 'delayed' })).toBe(4);
    expect(families.get('pgbb_queue_jobs')?.samples).toHaveLength(8);
    expect(families.get('pgbb_backup_failures_total')?.type).toBe('counter');
    expect(families.get('pgbb_last_backup_size_bytes')?.type).toBe('gauge');
  });

  it('agrees with prom-client’s own JSON view', async () => {
    const metrics = updatedMetrics();
    const json = await metrics.registry.getMetricsAsJSON();
    const text = parseExposition(await metrics.registry.metrics());
    expect(json.map((m) => m.name).sort()).toEqual([...text.keys()].sort());
    for (const m of json) {
      const values = m.values.map((v) => v.value).sort();
      expect(
        text
          .get(m.name)
          ?.samples.map((s) => s.value)
          .sort(),
        m.name,
      ).toEqual(values);
    }
  });

  it('counts backup failures per target, starting at 0', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.update('shop', { backups: [], lastBackupRun: null, lastRestoreTest: null, results: [] });
    expect(sampleValue(parseExposition(await metrics.registry.metrics()), 'pgbb_backup_failures_total', { target: 'shop' })).toBe(0);
    metrics.recordBackupFailure('shop');
    metrics.recordBackupFailure('shop');
    metrics.recordBackupFailure('billing');
    const families = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(families, 'pgbb_backup_failures_total', { target: 'shop' })).toBe(2);
    expect(sampleValue(families, 'pgbb_backup_failures_total', { target: 'billing' })).toBe(1);
  });

  it('drops a target’s backup series rather than report 1970 when it has no backup', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const input = { backups: [makeManifest({ startedAt: ago(HOUR) })], lastBackupRun: null, lastRestoreTest: null, results: [] };
    metrics.update('shop', input);
    metrics.update('shop', { ...input, backups: [] });
    const families = parseExposition(await metrics.registry.metrics());
    expect(families.get('pgbb_last_good_backup_timestamp_seconds')?.samples).toEqual([]);
    expect(families.get('pgbb_restore_test_passed')?.samples).toEqual([]);
  });

  it('exports ages beside the timestamps, for agents without time(): the newest backup and the last restore test', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const now = new Date('2026-12-04T12:00:00Z');
    const started = new Date(now.getTime() - HOUR);
    const tested = new Date(now.getTime() - 2 * 24 * HOUR);
    metrics.update('shop', {
      backups: [makeManifest({ startedAt: started })],
      lastBackupRun: null,
      lastRestoreTest: { passed: true, at: tested, problems: [], backupId: 'shop-20261202T120000Z', durationMs: 4200 },
      results: [],
      now,
    });
    const families = parseExposition(await metrics.registry.metrics());
    expect(sampleValue(families, 'pgbb_last_good_backup_age_seconds', { target: 'shop' })).toBe(3600);
    expect(sampleValue(families, 'pgbb_last_good_backup_timestamp_seconds', { target: 'shop' })).toBe(started.getTime() / 1000);
    expect(sampleValue(families, 'pgbb_last_restore_test_age_seconds', { target: 'shop' })).toBe(172800);
    expect(sampleValue(families, 'pgbb_last_restore_test_timestamp_seconds', { target: 'shop' })).toBe(tested.getTime() / 1000);
    expect(sampleValue(families, 'pgbb_restore_test_duration_seconds', { target: 'shop' })).toBe(4.2);
  });

  it('uses a registry of its own, so two instances and the global registry never collide', async () => {
    const a = updatedMetrics({ defaultMetrics: true });
    const b = updatedMetrics({ defaultMetrics: true });
    expect(a.registry).not.toBe(globalRegistry);
    expect(globalRegistry.getSingleMetric('pgbb_queue_jobs')).toBeUndefined();
    const families = parseExposition(await b.registry.metrics());
    expect(families.has('process_cpu_user_seconds_total')).toBe(true);
    expect(families.has('nodejs_heap_size_total_bytes')).toBe(true);
  });

  it('writes only well-formed exposition lines, default metrics included', async () => {
    const text = await updatedMetrics({ defaultMetrics: true }).registry.metrics();
    const labels = '(\\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\n]*")*\\})?';
    // Ours are always finite numbers; prom-client's event-loop gauges print "Nan" until they have a sample.
    const ours = new RegExp(`^pgbb_[a-zA-Z0-9_:]*${labels} [0-9.eE+-]+$`);
    const any = new RegExp(`^[a-zA-Z_:][a-zA-Z0-9_:]*${labels} ([0-9.eE+-]+|Nan|\\+Inf)$`);
    const meta = /^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped))$/;
    const lines = text.split('\n').filter((line) => line !== '' && !meta.test(line));
    expect(lines.filter((line) => !any.test(line))).toEqual([]);
    const pgbb = lines.filter((line) => line.startsWith('pgbb_'));
    expect(pgbb).toHaveLength(28); // 4 backup gauges, 1 counter, 4 restore-test, 9 conditions, 1 data-drift gauge, 2 queues × 4 states, the Slack failures counter
    expect(pgbb.filter((line) => !ours.test(line))).toEqual([]);
  });
});

describe('parseExposition (the test’s own stand-in parser)', () => {
  it('rejects what Prometheus would reject', () => {
    const head = '# HELP m help\n# TYPE m gauge\n';
    expect(() => parseExposition(`${head}m{a="1"} 2`)).not.toThrow();
    expect(() => parseExposition('m 1')).toThrow(/before its TYPE/);
    expect(() => parseExposition(`${head}m{a=1} 2`)).toThrow(/not a valid sample/);
    expect(() => parseExposition(`${head}m{a="1",a="2"} 2`)).toThrow(/twice/);
    expect(() => parseExposition(`${head}m 1 2 3`)).toThrow(/not a valid sample/);
    expect(() => parseExposition('# TYPE m gauge\nm 1')).toThrow(/no HELP/);
    expect(() => parseExposition(`${head}# TYPE m counter`)).toThrow(/second TYPE/);
  });
});
