// Writes test/durations.json (each test file's seconds, longest first) from a vitest JSON report, for
// test/support/sequencer.ts: `npm run test:durations` runs the suite with that report and writes the table.
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';

const [report = 'vitest-report.json'] = process.argv.slice(2);
const { testResults } = JSON.parse(readFileSync(report, 'utf8'));
const root = process.cwd();
const rows = testResults
  .map((t) => [relative(root, t.name), Math.round((t.endTime - t.startTime) / 100) / 10])
  .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
writeFileSync('test/durations.json', `${JSON.stringify(Object.fromEntries(rows), null, 2)}\n`);
console.log(`test/durations.json: ${rows.length} files, ${rows.reduce((s, r) => s + r[1], 0).toFixed(0)} s in all`);
