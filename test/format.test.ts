import { describe, expect, it } from 'vitest';
import { formatDuration } from '../src/format.ts';

/** Durations as messages show them: rounded once, to what is shown, so no "60.0 s" and no "3 min 60 s" (QA). */
describe('formatDuration', () => {
  it('rounds at the unit it shows, carrying into the next one', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(12_340)).toBe('12.3 s');
    expect(formatDuration(59_940)).toBe('59.9 s');
    expect(formatDuration(59_970)).toBe('1 min 0 s');
    expect(formatDuration(239_600)).toBe('4 min 0 s');
    expect(formatDuration(239_400)).toBe('3 min 59 s');
    expect(formatDuration(3_599_700)).toBe('1 h 0 min');
    expect(formatDuration(2 * 3_600_000 + 5 * 60_000)).toBe('2 h 5 min');
  });
});
