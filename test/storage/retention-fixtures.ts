import { createHash } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { makeBackupId, newRecordId, type Manifest, type RestoreRecord, type Storage } from '../../src/storage/index.ts';
import { manifestFor } from './fixtures.ts';

const DAY = 24 * 3600_000;

/** A finished backup started `ageDays` before `now`, kept `keepDays` (class daily), through the public interface. */
export async function store(storage: Storage, target: string, now: Date, ageDays: number, keepDays: number): Promise<Manifest> {
  const startedAt = new Date(now.getTime() - ageDays * DAY);
  const backupId = makeBackupId(target, startedAt);
  const body = `data of ${backupId}`;
  await storage.beginBackup(target, backupId);
  const w = await storage.createArtifactWriter(target, backupId, 'database.pgdump.zst');
  w.stream.end(body);
  await finished(w.stream);
  await w.commit();
  const m: Manifest = {
    ...manifestFor(target, backupId, startedAt.toISOString(), { bytes: Buffer.byteLength(body), sha256: createHash('sha256').update(body).digest('hex') }),
    kind: 'scheduled',
    retentionClass: 'daily',
    retainUntil: new Date(startedAt.getTime() + keepDays * DAY).toISOString(),
  };
  await storage.writeManifest(m);
  return m;
}

export function restoreTestRecord(backupId: string, passed: boolean, at: Date): RestoreRecord {
  return {
    formatVersion: 1,
    kind: 'restore-test',
    id: newRecordId(at),
    target: 'shop',
    backupId,
    startedAt: at.toISOString(),
    finishedAt: at.toISOString(),
    durationMs: 1000,
    restoreMs: 800,
    verifyMs: 100,
    restoredBytes: passed ? 1000 : null,
    passed,
    checked: { checksums: [], tables: 0, objects: [], smokeQueries: [] },
    problems: passed ? [] : ['row counts differ'],
    requestedBy: { source: 'schedule' },
    jobId: null,
    database: 'pgbb_rt_0123456789ab',
    dropped: true,
    selection: null,
    correctiveActions: null,
  };
}

