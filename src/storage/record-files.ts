import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TargetName } from '../target-name.ts';
import { BotError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { readdirIfExists, storageError, writeFileAtomically } from './fs-util.ts';
import { RecordIdSchema, RestoreRecordSchema, type RecordKind, type RestoreRecord, validRecord } from './restore-record.ts';

/**
 * Restore and restore-test records on a local disk: `<root>/<target>/_records/<kind>/<id>.json`. The `_`
 * prefix can never start a backup id (`<target>-…`), so listing backups and finding unfinished ones pass it by,
 * and retention, which deletes backup directories, never touches it.
 */
export const RECORDS_DIR = '_records';

function recordDir(root: string, target: string, kind: RecordKind): string {
  return join(root, target, RECORDS_DIR, kind);
}

export async function writeRecordFile(root: string, record: RestoreRecord, where: string): Promise<void> {
  const r = validRecord(record);
  const dir = recordDir(root, r.target, r.kind);
  try {
    await mkdir(dir, { recursive: true });
    await writeFileAtomically(join(dir, `${r.id}.json`), `${JSON.stringify(r, null, 2)}\n`);
  } catch (err) {
    throw storageError(err, where, 'write a restore record');
  }
}

/** Records of one kind, newest first by start time; unreadable files are skipped with a warning, never fatal. */
export async function listRecordFiles(root: string, kind: RecordKind, target: string | undefined, log?: Logger): Promise<RestoreRecord[]> {
  if (target !== undefined && !TargetName.safeParse(target).success) throw new BotError('bad_request', `"${target}" is not a valid target name.`);
  const targets = target !== undefined ? [target] : (await readdirIfExists(root)).filter((t) => TargetName.safeParse(t).success);
  const out: RestoreRecord[] = [];
  for (const t of targets) {
    const dir = recordDir(root, t, kind);
    for (const name of await readdirIfExists(dir)) {
      if (!name.endsWith('.json') || !RecordIdSchema.safeParse(name.slice(0, -5)).success) continue;
      try {
        const r = RestoreRecordSchema.parse(JSON.parse(await readFile(join(dir, name), 'utf8')));
        if (r.target !== t || r.kind !== kind) throw new Error(`record names ${r.target}/${r.kind}`);
        out.push(r);
      } catch (err) {
        log?.warn({ err, target: t, kind, file: name }, 'skipping an unreadable restore record');
      }
    }
  }
  return out.sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}
