import { describe, expect, it } from 'vitest';
import { preMigrationVerifications, samePeriod } from '../../src/checklists/evidence.ts';
import { initialState, nextVersion, SHOWN_VERSIONS_KEPT } from '../../src/checklists/state.ts';
import { checklistItems, DEFAULT_CHECKLISTS } from '../../src/notifications/checklists.ts';

const backup = {
  ok: true as const,
  backupId: 'shop-20261118T010000Z',
  jobId: 'backup-shop-1',
  bytes: 157 * 1024 * 1024,
  durationMs: 61_000,
  retainUntil: '2027-02-16T01:00:00.000Z',
};

describe('preMigrationVerifications', () => {
  it('ticks both items with the backup id, size, deadline and the restore verdict with its durations', () => {
    const r = preMigrationVerifications(backup, { passed: true, jobId: 't1', restoreMs: 4200, durationMs: 9100, tables: 9, problems: [] }, 'Europe/Paris');
    expect(r['pre-migration-backup']).toEqual({ ok: true, evidence: 'shop-20261118T010000Z: 157 MB in 1 min 1 s, kept until Tue 2027-02-16 02:00 UTC+01:00' });
    expect(r['pre-migration-restore-tested']).toEqual({
      ok: true,
      evidence: 'restore test passed: restore time (RTO) 4.2 s (whole test 9.1 s), row counts of 9 tables equal',
    });
  });

  it('fails the restore item with the first problem, or with why the test could not run', () => {
    const failed = preMigrationVerifications(
      backup,
      { passed: false, jobId: 't1', restoreMs: 100, durationMs: 2000, tables: 9, problems: ['row counts differ: shop.orders'] },
      'UTC',
    );
    expect(failed['pre-migration-restore-tested']).toEqual({ ok: false, evidence: 'restore test FAILED after 2.0 s: row counts differ: shop.orders' });
    const notRun = preMigrationVerifications(
      backup,
      { passed: null, jobId: 't1', restoreMs: null, durationMs: null, tables: null, problems: ['no CREATEDB'] },
      'UTC',
    );
    expect(notRun['pre-migration-restore-tested']).toEqual({ ok: false, evidence: 'restore test could not run: no CREATEDB' });
  });

  it('a failed backup fails both items: there is no restore point', () => {
    const r = preMigrationVerifications({ ok: false, jobId: 'backup-shop-2', reason: 'disk full' }, null, 'UTC');
    expect(r['pre-migration-backup']).toEqual({ ok: false, evidence: 'backup FAILED (job backup-shop-2): disk full' });
    expect(r['pre-migration-restore-tested']).toEqual({ ok: false, evidence: 'not run: there is no backup to test' });
  });
});

describe('samePeriod', () => {
  it('judges the month and the quarter in the configured zone', () => {
    const now = new Date('2026-11-18T09:00:00Z');
    // 23:30 UTC on 31 October is already 1 November in Paris.
    expect(samePeriod(new Date('2026-10-31T23:30:00Z'), now, 'Europe/Paris', 'month')).toBe(true);
    expect(samePeriod(new Date('2026-10-31T23:30:00Z'), now, 'UTC', 'month')).toBe(false);
    expect(samePeriod(new Date('2026-10-02T10:00:00Z'), now, 'UTC', 'quarter')).toBe(true);
    expect(samePeriod(new Date('2026-09-30T10:00:00Z'), now, 'UTC', 'quarter')).toBe(false);
  });
});

describe('nextVersion', () => {
  it('remembers what each recent version showed, so a click on that copy is read against it', () => {
    const items = checklistItems(DEFAULT_CHECKLISTS.daily, { 'disk-space': { ok: true, evidence: '60 % free' } });
    let state = initialState('daily', items, null);
    expect(state.shown).toEqual({ '1': ['disk-space'] });
    const ticked = items.map((i) => (i.id === 'alerts-reviewed' ? { ...i, ticked: { by: 'U1', at: '2026-11-18T09:00:00Z' } } : i));
    state = nextVersion(state, ticked);
    expect(state).toMatchObject({ version: 2, shown: { '1': ['disk-space'], '2': ['disk-space', 'alerts-reviewed'] } });
    for (let i = 0; i < SHOWN_VERSIONS_KEPT + 5; i++) state = nextVersion(state, ticked);
    expect(Object.keys(state.shown)).toHaveLength(SHOWN_VERSIONS_KEPT);
    expect(state.shown[String(state.version)]).toEqual(['disk-space', 'alerts-reviewed']);
  });
});
