import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createMetrics, registerWorkerProcessGauge } from '../../src/health/index.ts';
import { HEALTH_CONDITIONS } from '../../src/health/types.ts';

const RULES = 'deploy/prometheus/alerts.yml';

/** Every pgbb_* metric name an expression uses. */
const metricNames = (expr: string) => [...expr.matchAll(/\bpgbb_[a-z_]+\b/g)].map((m) => m[0]);

/**
 * deploy/prometheus/alerts.yml as Prometheus reads it (promtool, Debian package `prometheus`: .ci/run installs
 * it), its own unit tests, and its names held to what the bot exports: a rule on a metric or a condition the bot
 * does not have would never fire, and nobody would notice.
 */
describe('the Prometheus alerting rules', async () => {
  const rules = (parse(await readFile(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }).groups.flatMap((g) => g.rules);

  it('pass `promtool check rules` and their own `promtool test rules`', async () => {
    const check = await execa('promtool', ['check', 'rules', RULES], { reject: false });
    expect(check.exitCode, `${check.stdout}\n${check.stderr}`).toBe(0);
    expect(check.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    const test = await execa('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: 'deploy/prometheus', reject: false });
    expect(test.exitCode, `${test.stdout}\n${test.stderr}`).toBe(0);
    expect(test.stdout).toContain('SUCCESS');
  });

  it('name only metrics and conditions the bot exports', async () => {
    const { registry } = createMetrics({ defaultMetrics: false });
    // `all` adds its worker child's gauge (service.ts).
    registerWorkerProcessGauge(registry, { healthy: () => true });
    const exported = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    for (const rule of rules) {
      for (const name of metricNames(rule.expr)) expect(exported, `${rule.alert}: ${name}`).toContain(name);
      for (const m of rule.expr.matchAll(/condition="([^"]+)"/g)) expect(HEALTH_CONDITIONS, rule.alert).toContain(m[1]);
    }
  });

  it('cover the seed’s conditions: stale, size anomaly, slow, disk, failures, restore test failing or too old, RPO over objective', () => {
    const alerts = rules.map((r) => r.alert);
    for (const a of [
      'PgBackupStale',
      'PgBackupSizeAnomaly',
      'PgBackupSlow',
      'PgBackupDiskLow',
      'PgBackupFailed',
      'PgRestoreTestFailing',
      'PgRestoreTestTooOld',
      'PgWalRpoOverObjective',
    ]) {
      expect(alerts).toContain(a);
    }
  });

  it('each have a unit test in which they fire, and one in which they do not', async () => {
    type Case = { alertname: string; exp_alerts: unknown[] };
    const tests = (parse(await readFile('deploy/prometheus/alerts.test.yml', 'utf8')) as { tests: Array<{ alert_rule_test: Case[] }> }).tests.flatMap(
      (t) => t.alert_rule_test,
    );
    for (const { alert } of rules) {
      const cases = tests.filter((c) => c.alertname === alert);
      expect(
        cases.some((c) => c.exp_alerts.length > 0),
        `${alert} fires in some case`,
      ).toBe(true);
      expect(
        cases.some((c) => c.exp_alerts.length === 0),
        `${alert} is quiet in some case`,
      ).toBe(true);
    }
  });
});
