import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Longest files first, by the durations a run measured (test/durations.json, written by `npm run test:durations`
 * through durations-reporter.ts). A fresh clone, as in CI, has no vitest cache, and vitest then runs the largest
 * files first; size says little of time here (a 100 s e2e file is smaller than many 1 s ones), so a long file could
 * start last and keep one worker busy after the others are done. Measured alone here the order changed little (415 s
 * against 396 and 417 s with vitest's); it makes the order the same on every machine and keeps the long files from
 * the end. Files the table does not know (new ones) run first, as vitest runs unknown files first, in its order.
 */
export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const seconds = durations();
    const base = await super.sort(files);
    const known = (f: TestSpecification) => seconds[relative(this.ctx.config.root, f.moduleId)];
    // Stable: among files the table does not know, vitest's order stands.
    return base
      .map((f, i) => ({ f, i, s: known(f) }))
      .sort((a, b) => (b.s ?? Number.POSITIVE_INFINITY) - (a.s ?? Number.POSITIVE_INFINITY) || a.i - b.i)
      .map((x) => x.f);
  }
}

function durations(): Record<string, number> {
  try {
    return JSON.parse(readFileSync(new URL('../durations.json', import.meta.url), 'utf8')) as Record<string, number>;
  } catch (err) {
    console.warn(`test/durations.json could not be read (${String(err)}): the files run in vitest's own order`);
    return {};
  }
}
