import { describe, expect, it } from 'vitest';
import { evaluateHealth, pagerCondition } from '../../src/health/index.ts';
import { FIRST_BASE_BACKUP_GRACE_MS, baseBackupCondition } from '../../src/health/base-backup-condition.ts';
import type { BaseBackupHealth } from '../../src/health/types.ts';
import { HOUR, NOW, ago, healthyInput, pick } from './fixtures.ts';

const DAY = 24 * HOUR;
const base = (o: Partial<BaseBackupHealth> = {}): BaseBackupHealth => ({
  newest: { id: 'shop-base-20261120T010000Z', finishedAt: ago(4 * DAY).toISOString() },
  lastRun: { ok: true, at: ago(4 * DAY), reason: null, jobId: 'base-backup-shop-1' },
  watchedSince: ago(30 * DAY),
  maxAgeHours: 192,
  ...o,
});

describe('the base-backup health condition', () => {
  it('is ok while the newest base backup is younger than the limit, with its id, age and the limit as evidence', () => {
    const r = baseBackupCondition('shop', NOW, base());
    expect(r).toMatchObject({ condition: 'base-backup', severity: 'error', status: 'ok', summary: 'The newest base backup of shop is recent' });
    expect(r.evidence).toBe('newest shop-base-20261120T010000Z, finished 2026-11-20 12:00 UTC (4 days ago), limit 8 days');
    expect(r.value).toBe(4 * DAY);
  });

  it('fails, loudly, once the newest is older than the limit (8 days by default for the weekly schedule)', () => {
    const old = baseBackupCondition('shop', NOW, base({ newest: { id: 'shop-base-old', finishedAt: ago(8 * DAY + HOUR).toISOString() } }));
    expect(old).toMatchObject({ status: 'failing', summary: 'The newest base backup of shop is too old' });
    expect(old.quiet).toBeUndefined();
    expect(old.evidence).toMatch(/\(8\.0 days ago\), limit 8 days$/);
    // A shorter limit from the config is honoured.
    expect(baseBackupCondition('shop', NOW, base({ maxAgeHours: 72 }))).toMatchObject({ status: 'failing' });
  });

  it('fails when the last run failed, quietly (the worker has posted and paged under the same key), whatever the newest', () => {
    const r = baseBackupCondition(
      'shop',
      NOW,
      base({ lastRun: { ok: false, at: ago(HOUR), reason: 'the role has no REPLICATION attribute', jobId: 'base-backup-shop-2' } }),
    );
    expect(r).toMatchObject({ status: 'failing', quiet: true, summary: 'The last base backup of shop failed: the role has no REPLICATION attribute' });
    expect(r.evidence).toBe(
      'last run failed at 2026-11-24 11:00 UTC (job base-backup-shop-2): the role has no REPLICATION attribute; newest shop-base-20261120T010000Z, finished 2026-11-20 12:00 UTC',
    );
    // The worker and health page under one dedup key: pg-backup-bot/<target>/base-backup.
    expect(pagerCondition(r.condition)).toBe('base-backup');
  });

  it('with no base backup at all: a quiet warning during the first day it is watched, then failing and paged', () => {
    const fresh = baseBackupCondition('shop', NOW, base({ newest: null, lastRun: null, watchedSince: ago(2 * HOUR) }));
    expect(fresh).toMatchObject({ status: 'failing', quiet: true, summary: 'shop has no base backup yet' });
    expect(fresh.evidence).toContain('Take one: `/backup now --physical shop` (or `pg-backup-bot base-backup shop`)');
    expect(fresh.evidence).toContain(`first one due by 2026-11-25 10:00 UTC`);
    const late = baseBackupCondition(
      'shop',
      NOW,
      base({ newest: null, lastRun: null, watchedSince: new Date(NOW.getTime() - FIRST_BASE_BACKUP_GRACE_MS - 1) }),
    );
    expect(late).toMatchObject({ status: 'failing', summary: 'shop has no base backup: point-in-time recovery has nothing to start from' });
    expect(late.quiet).toBeUndefined();
    // Without Redis (the check CLI) nobody knows since when: judged as long ago.
    expect(baseBackupCondition('shop', NOW, base({ newest: null, lastRun: null, watchedSince: null })).quiet).toBeUndefined();
  });

  it('is judged by evaluateHealth only for targets with point-in-time recovery, last in the list', () => {
    expect(evaluateHealth(healthyInput()).some((r) => r.condition === 'base-backup')).toBe(false);
    const results = evaluateHealth({ ...healthyInput(), baseBackup: base({ newest: null, lastRun: null, watchedSince: null }) });
    expect(results.at(-1)?.condition).toBe('base-backup');
    expect(pick(results, 'base-backup').status).toBe('failing');
  });
});
