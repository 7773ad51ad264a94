import { TargetName } from '../target-name.ts';
import { BotError } from '../errors.ts';
import { BackupIdSchema } from './manifest.ts';
import { RECORDS_DIR } from './record-files.ts';
import { RecordIdSchema, type RecordKind } from './restore-record.ts';

/**
 * Object keys of S3Storage, the same layout as LocalStorage under a prefix:
 * `<prefix>/<target>/<backupId>/<file>`, `<prefix>/<target>/<backupId>/manifest.json`,
 * `<prefix>/<target>/_records/<kind>/<id>.json`. Names reach keys only through these checks.
 */

export const MANIFEST = 'manifest.json';
/** Written by beginBackup so that a reservation is visible before the first artifact arrives (reservation.ts). */
export { RESERVATION } from './reservation.ts';
const FILE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]*$/;

export class S3Keys {
  /** `''` or `backups/pgbb/`: always ends with a slash, so target `app` never matches `app2/`. */
  readonly root: string;

  constructor(prefix: string) {
    const p = prefix.replace(/^\/+|\/+$/g, '');
    this.root = p ? `${p}/` : '';
  }

  target(target: string): string {
    if (!TargetName.safeParse(target).success) throw new BotError('bad_request', `"${target}" is not a valid target name.`);
    return `${this.root}${target}/`;
  }

  /** `<root><target>/<backupId>/` */
  backup(target: string, backupId: string): string {
    if (!TargetName.safeParse(target).success || !BackupIdSchema.safeParse(backupId).success || !backupId.startsWith(`${target}-`)) {
      throw new BotError('bad_request', `"${backupId}" is not a backup id of target "${target}".`);
    }
    return `${this.root}${target}/${backupId}/`;
  }

  artifact(target: string, backupId: string, file: string): string {
    if (!FILE_NAME.test(file) || file === MANIFEST || /\.(partial|tmp)$/.test(file)) {
      throw new BotError('bad_request', `"${file}" is not a valid artifact name.`);
    }
    return `${this.backup(target, backupId)}${file}`;
  }

  manifest(target: string, backupId: string): string {
    return `${this.backup(target, backupId)}${MANIFEST}`;
  }

  records(target: string, kind: RecordKind): string {
    return `${this.target(target)}${RECORDS_DIR}/${kind}/`;
  }

  record(target: string, kind: RecordKind, id: string): string {
    if (!RecordIdSchema.safeParse(id).success) throw new BotError('bad_request', `"${id}" is not a record id.`);
    return `${this.records(target, kind)}${id}.json`;
  }

  /** `<root><target>/<backupId>/<name>` → its parts, or null for any other key (records, strays). */
  parseBackupKey(key: string): { target: string; backupId: string; name: string } | null {
    if (!key.startsWith(this.root)) return null;
    const parts = key.slice(this.root.length).split('/');
    if (parts.length !== 3) return null;
    const [target = '', backupId = '', name = ''] = parts;
    if (!TargetName.safeParse(target).success || !backupId.startsWith(`${target}-`) || !BackupIdSchema.safeParse(backupId).success || !name) return null;
    return { target, backupId, name };
  }
}
