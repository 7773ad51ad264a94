import type { ConditionResult, HealthCondition, HealthInput } from '../../src/health/index.ts';
import { type Manifest, ManifestSchema, type RetentionClass, makeBackupId } from '../../src/storage/manifest.ts';

/** A fixed clock: every verdict in these tests is relative to it. */
export const NOW = new Date('2026-11-24T12:00:00.000Z');
export const HOUR = 60 * 60 * 1000;
export const MB = 1024 * 1024;

export function ago(ms: number): Date {
  return new Date(NOW.getTime() - ms);
}

/** A finished backup that ManifestSchema accepts, so the health code sees exactly what storage would hand it. */
export function makeManifest(options: {
  startedAt: Date;
  target?: string;
  bytes?: number;
  durationMs?: number;
  retentionClass?: RetentionClass;
}): Manifest {
  const target = options.target ?? 'shop';
  const durationMs = options.durationMs ?? 10 * 60 * 1000;
  const bytes = options.bytes ?? 384 * MB;
  return ManifestSchema.parse({
    formatVersion: 1,
    backupId: makeBackupId(target, options.startedAt),
    target,
    kind: 'scheduled',
    retentionClass: options.retentionClass ?? 'daily',
    retainUntil: null,
    requestedBy: { source: 'schedule' },
    jobId: null,
    label: null,
    startedAt: options.startedAt.toISOString(),
    finishedAt: new Date(options.startedAt.getTime() + durationMs).toISOString(),
    durationMs,
    database: { name: target, serverVersion: '16.4', serverVersionNum: 160004, pgDumpVersion: 'pg_dump (PostgreSQL) 16.4', sizeBytes: bytes * 3 },
    snapshotId: '00000003-00000002-1',
    artifacts: [
      // Split over two artifacts so the health code has to add them up, as totalBytes does.
      { file: 'database.pgdump.zst', role: 'database', format: 'custom', compression: 'zstd', compressionLevel: 2, encryption: null, bytes: bytes - 1024, sha256: 'a'.repeat(64), rawBytes: bytes * 2 },
      { file: 'globals.sql.zst', role: 'globals', format: 'plain', compression: 'zstd', compressionLevel: 2, encryption: null, bytes: 1024, sha256: 'b'.repeat(64), rawBytes: 4096 },
    ],
    globals: { included: true, rolePasswords: false, note: null },
    verification: {
      tables: [{ schema: 'public', table: 'orders', rows: 10 }],
      objects: {
        schemas: 1,
        tables: 1,
        partitionedTables: 0,
        constraints: { p: 1, f: 0, u: 0, c: 0, x: 0 },
        indexes: 1,
        functions: 0,
        aggregates: 0,
        triggers: 0,
        sequences: 0,
        views: 0,
        materializedViews: 0,
        domains: 0,
        types: 0,
        extensions: 1,
      },
    },
    tool: { name: 'pg-backup-bot', version: 'test' },
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
