import type { ConditionResult, HealthCondition, HealthInput } from '../../src/health/index.ts';
import type { Manifest, RetentionClass } from '../../src/storage/manifest.ts';
import { makeManifest as buildManifest } from '../fixtures/backups.ts';

/** A fixed clock: every verdict in these tests is relative to it. */
export const NOW = new Date('2026-11-24T12:00:00.000Z');
export const HOUR = 60 * 60 * 1000;
export const MB = 1024 * 1024;

export function ago(ms: number): Date {
  return new Date(NOW.getTime() - ms);
}

/**
 * A scheduled backup as the health code sees it: `bytes` split over two artifacts (database and globals), so the
 * health code has to add them up, as totalBytes does.
 */
export function makeManifest(options: { startedAt: Date; target?: string; bytes?: number; durationMs?: number; retentionClass?: RetentionClass }): Manifest {
  const bytes = options.bytes ?? 384 * MB;
  return buildManifest({
    startedAt: options.startedAt,
    target: options.target ?? 'shop',
    kind: 'scheduled',
    retentionClass: options.retentionClass ?? 'daily',
    requestedBy: { source: 'schedule' },
    durationMs: options.durationMs ?? 10 * 60 * 1000,
    artifacts: [
      { file: 'database.pgdump.zst', bytes: bytes - 1024, sha256: 'a'.repeat(64), rawBytes: bytes * 2 },
      { file: 'globals.sql.zst', bytes: 1024, sha256: 'b'.repeat(64), rawBytes: 4096 },
    ],
  });
}

/** One backup a day, newest first in `sizes`, the newest started `newestAgeMs` before NOW; returned shuffled. */
export function dailyBackups(sizes: number[], newestAgeMs = 3 * HOUR): Manifest[] {
  const list = sizes.map((bytes, i) => makeManifest({ startedAt: ago(newestAgeMs + i * 24 * HOUR), bytes }));
  // The input is documented as "any order": reversing proves the code sorts by itself.
  return list.reverse();
}

/** A healthy target: fresh backups of steady size, last run ok, restore test passed, half the disk free. */
export function healthyInput(overrides: Partial<HealthInput> = {}): HealthInput {
  return {
    target: 'shop',
    now: NOW,
    backups: dailyBackups([384 * MB, 380 * MB, 390 * MB, 384 * MB, 400 * MB, 370 * MB, 384 * MB, 384 * MB]),
    running: [],
    lastBackupRun: { ok: true, at: ago(3 * HOUR), reason: null, jobId: '41' },
    lastRestoreTest: { passed: true, at: ago(6 * HOUR), problems: [], backupId: 'shop-20261124T090000Z' },
    disk: { totalBytes: 100 * 1024 * MB, freeBytes: 50 * 1024 * MB },
    ...overrides,
  };
}

export function pick(results: ConditionResult[], condition: HealthCondition): ConditionResult {
  const found = results.find((r) => r.condition === condition);
  if (!found) throw new Error(`no result for ${condition}`);
  return found;
}

export function result(condition: HealthCondition, status: ConditionResult['status'], severity: ConditionResult['severity'], evidence = 'e'): ConditionResult {
  return { condition, status, severity, summary: `shop ${condition} ${status}`, evidence };
}
