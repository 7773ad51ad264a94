import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/health/index.ts';

interface Panel {
  id: number;
  title: string;
  type: string;
  datasource: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Array<{ expr: string; refId: string }>;
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; definition?: string }> };
}

/** Grafana's reference to the dashboard's data-source variable, written as Grafana writes it. */
const GRAFANA_VARIABLE = ['$', '{datasource}'].join('');

/** Every pgbb_* name a dashboard's queries use (panels and template variables) that is not in `exported`. */
function unknownMetrics(d: Dashboard, exported: Set<string>): string[] {
  const queries = [...d.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...d.templating.list.map((v) => v.definition ?? '')];
  return [...new Set(queries.flatMap((q) => [...q.matchAll(/\bpgbb_[a-z_]+\b/g)].map((m) => m[0])))].filter((n) => !exported.has(n));
}

/**
 * deploy/grafana/pg-backup-bot.json: importable (well-formed, panels laid out on Grafana's 24-column grid, every
 * query on the dashboard's Prometheus variable) and naming only metrics the bot exports — a panel on a renamed or
 * missing metric would stay empty, and nobody would notice.
 */
describe('the Grafana dashboard', async () => {
  const dashboard = JSON.parse(await readFile('deploy/grafana/pg-backup-bot.json', 'utf8')) as Dashboard;
  const exported = new Set((await createMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name));

  it('names only metrics the bot exports', () => {
    expect(unknownMetrics(dashboard, exported)).toEqual([]);
    // The check itself catches a wrong name.
    const doctored = structuredClone(dashboard);
    (doctored.panels[0] as Panel).targets[0] = { refId: 'A', expr: 'pgbb_last_backup_age_seconds' };
    expect(unknownMetrics(doctored, exported)).toEqual(['pgbb_last_backup_age_seconds']);
  });

  it('charts what the on-call engineer looks for first', () => {
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\bpgbb_[a-z_]+\b/g)].map((m) => m[0]))));
    for (const name of [
      'pgbb_last_good_backup_age_seconds',
      'pgbb_restore_test_passed',
      'pgbb_last_restore_test_age_seconds',
      'pgbb_condition_failing',
      'pgbb_backup_failures_total',
      'pgbb_last_backup_size_bytes',
      'pgbb_restore_test_duration_seconds',
      'pgbb_queue_jobs',
    ]) {
      expect(used, name).toContain(name);
    }
  });

  it('is importable: unique panel ids, on the 24-column grid, every query on the Prometheus variable', () => {
    expect(dashboard.uid).toBe('pg-backup-bot');
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      expect(p.gridPos.w * p.gridPos.h, p.title).toBeGreaterThan(0);
      expect(p.datasource).toEqual({ type: 'prometheus', uid: GRAFANA_VARIABLE });
      expect(p.targets.length, p.title).toBeGreaterThan(0);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'target']);
  });
});
