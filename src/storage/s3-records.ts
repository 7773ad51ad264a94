import type { Logger } from '../logger.ts';
import { RestoreRecordSchema, type RecordKind, type RestoreRecord, validRecord } from './restore-record.ts';
import type { S3Keys } from './s3-keys.ts';
import { mapLimit, type S3Bucket } from './s3-objects.ts';

/**
 * Restore and restore-test records in S3: `<prefix>/<target>/_records/<kind>/<id>.json`, as on a local disk.
 * The `_` prefix never starts a backup id, so listing backups passes them by and retention never deletes them.
 * A PutObject is atomic, so there is no temporary key.
 */

const RECORD_FILE = /^\d{8}T\d{9}Z-[0-9a-f]{6}\.json$/;
const READ_CONCURRENCY = 8;

export async function writeS3Record(s3: S3Bucket, keys: S3Keys, record: RestoreRecord): Promise<void> {
  const r = validRecord(record);
  await s3.writeText(keys.record(r.target, r.kind, r.id), `${JSON.stringify(r, null, 2)}\n`, 'write a restore record');
}

/** Records of one kind, newest first by start time; unreadable objects are skipped with a warning, never fatal. */
export async function listS3Records(s3: S3Bucket, keys: S3Keys, kind: RecordKind, target: string | undefined, log?: Logger): Promise<RestoreRecord[]> {
  // One listing of the target, or of the whole prefix: no Delimiter, which some S3-compatible servers get wrong.
  const under = target !== undefined ? keys.target(target) : keys.root;
  const found: Array<{ target: string; key: string }> = [];
  for (const o of await s3.list(under, 'list restore records')) {
    const t = o.key.slice(keys.root.length).split('/')[0] ?? '';
    let dir: string;
    try {
      dir = keys.records(t, kind);
    } catch {
      continue; // a key under the prefix that belongs to no target
    }
    if (o.key.startsWith(dir) && RECORD_FILE.test(o.key.slice(dir.length))) found.push({ target: t, key: o.key });
  }
  const records = await mapLimit(found, READ_CONCURRENCY, async ({ target: t, key }) => {
    try {
      const r = RestoreRecordSchema.parse(JSON.parse((await s3.readText(key, 'read a restore record')) ?? ''));
      if (r.target !== t || r.kind !== kind) throw new Error(`record names ${r.target}/${r.kind}`);
      return r;
    } catch (err) {
      log?.warn({ err, target: t, kind, key }, 'skipping an unreadable restore record');
      return null;
    }
  });
  return records
    .filter((r): r is RestoreRecord => r !== null)
    .sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}
