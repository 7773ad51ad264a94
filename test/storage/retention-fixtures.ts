import { makeBackupId, type Manifest, type RestoreRecord, type Storage } from '../../src/storage/index.ts';
import { storeBackup } from '../fixtures/backups.ts';
import { makeRecord } from '../fixtures/records.ts';

const DAY = 24 * 3600_000;

/** A finished backup started `ageDays` before `now`, kept `keepDays` (class daily), through the public interface. */
export function store(storage: Storage, target: string, now: Date, ageDays: number, keepDays: number): Promise<Manifest> {
  const startedAt = new Date(now.getTime() - ageDays * DAY);
  const retainUntil = new Date(startedAt.getTime() + keepDays * DAY).toISOString();
  return storeBackup(storage, target, makeBackupId(target, startedAt), startedAt.toISOString(), undefined, {
    kind: 'scheduled',
    retentionClass: 'daily',
    retainUntil,
  });
}

/** A scheduled restore test of one of shop's backups, at `at`. */
export function restoreTestRecord(backupId: string, passed: boolean, at: Date): RestoreRecord {
  return makeRecord({
    target: 'shop',
    backupId,
    startedAt: at.toISOString(),
    passed,
    restoredBytes: passed ? 1000 : null,
    problems: passed ? [] : ['row counts differ'],
    requestedBy: { source: 'schedule' },
    jobId: null,
  });
}
