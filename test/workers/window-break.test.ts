import { describe, expect, it } from 'vitest';
import type { WalArchiveFacts } from '../../src/health/wal-types.ts';
import { windowBreak } from '../../src/workers/base-backup-after-break.ts';

/** When the health check starts a base backup (base-backup-after-break.ts): what breaks a window, and what does not. */
const facts = (o: Partial<WalArchiveFacts>): WalArchiveFacts => ({
  baseBackups: 1,
  newestSegment: '000000010000000000000009',
  gaps: [],
  reachesNewest: true,
  window: { from: new Date('2026-12-07T01:00:00Z'), to: new Date('2026-12-07T02:00:00Z') },
  earlier: null,
  ...o,
});

describe('windowBreak', () => {
  it('is none for a window that reaches the newest WAL, an older gap behind a newer base backup included', () => {
    expect(windowBreak(facts({}))).toBeNull();
    expect(windowBreak(facts({ gaps: ['000000010000000000000004'], gap: '000000010000000000000004', reachesNewest: true }))).toBeNull();
    expect(windowBreak(undefined)).toBeNull();
  });

  it('is the gap that ends the window, or the newest gap when no window is left', () => {
    const gaps = ['000000010000000000000004', '000000010000000000000007'];
    expect(windowBreak(facts({ gaps, gap: gaps[0], reachesNewest: false }))).toEqual({
      id: 'gap-000000010000000000000004',
      label: 'after the gap at WAL 000000010000000000000004',
    });
    expect(windowBreak(facts({ gaps, reachesNewest: false, window: null }))?.id).toBe('gap-000000010000000000000007');
  });

  it('is a timeline no base backup was taken on, first', () => {
    const switched = { timeline: 2, segment: '00000002000000000000000A', at: new Date('2026-12-07T02:00:00Z') };
    expect(windowBreak(facts({ switched, reachesNewest: false }))).toEqual({ id: 'timeline-2', label: 'after the switch to timeline 2' });
  });

  it('is nothing to act on when the archive could not be read', () => {
    expect(windowBreak(facts({ unreadable: 'EACCES', reachesNewest: false, gaps: ['000000010000000000000004'] }))).toBeNull();
    expect(windowBreak(facts({ notKept: 'S3', reachesNewest: false, gaps: ['000000010000000000000004'] }))).toBeNull();
  });
});
