import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Config } from '../config.ts';

/**
 * No BACKUP_DIR at all is not "no backups yet": a wrong one set, or a new host without the backups (with S3 as the
 * primary store the directory is not where backups are). The sentence that says so, or null.
 */
export function missingBackupDir(config: Pick<Config, 'backupDir' | 's3'>): string | null {
  if (config.s3?.mode === 'primary' || existsSync(config.backupDir)) return null;
  return `BACKUP_DIR ${resolve(config.backupDir)} does not exist: no backup was ever written there. If the backups are elsewhere, set BACKUP_DIR to that directory.`;
}
