import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

/**
 * Writes test/durations.json, each test file's seconds (longest first), for sequencer.ts: `npm run test:durations`.
 * A file's time is all of it: its environment, its import, its setup and its tests and hooks (`beforeAll` starting
 * a harness included), not only from its first test to its last.
 */
export default class DurationsReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const root = process.cwd();
    const rows = modules
      .map((m): [string, number] => {
        const d = m.diagnostic();
        const ms = d.environmentSetupDuration + d.prepareDuration + d.collectDuration + d.setupDuration + d.duration;
        return [relative(root, m.moduleId), Math.round(ms / 100) / 10];
      })
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    writeFileSync('test/durations.json', `${JSON.stringify(Object.fromEntries(rows), null, 2)}\n`);
    console.log(`test/durations.json: ${rows.length} files, ${rows.reduce((s, r) => s + r[1], 0).toFixed(0)} s in all`);
  }
}
