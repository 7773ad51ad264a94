import { describe, expect, it } from 'vitest';
import { benchmarksDoc, parseDoc } from '../bench/report.ts';

describe('docs/benchmarks.md as the bench rewrites it', () => {
  it('replaces the sections its run measured and keeps every other one, hand-written ones too, in the page’s order', () => {
    const page = benchmarksDoc({
      page: [
        { title: 'Backup throughput', body: 'old figures' },
        { title: 'Point-in-time recovery against pgBackRest (issue 15)', body: 'written by bench:pitr' },
        { title: 'A fleet: 200 targets (issue 17)', body: 'written by bench:fleet' },
      ],
      throughput: 'old figures',
    });
    const sections = parseDoc(page);
    sections.throughput = 'new figures';
    const again = benchmarksDoc(sections);
    expect(again).toContain('## Backup throughput\n\nnew figures\n');
    expect(again).not.toContain('old figures');
    expect(again.indexOf('## Point-in-time recovery')).toBeGreaterThan(again.indexOf('## Backup throughput'));
    expect(again.indexOf('## A fleet: 200 targets (issue 17)\n\nwritten by bench:fleet')).toBeGreaterThan(again.indexOf('## Point-in-time recovery'));
  });
});
