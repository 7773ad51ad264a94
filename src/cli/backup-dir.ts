import { resolve } from 'node:path';
import type { Config } from '../config.ts';
import { backupDirProblem } from '../storage/fs-util.ts';

/**
 * No BACKUP_DIR at all, or an empty one, is not "no backups yet": a wrong one set, a new host without the backups, or
 * a disk not mounted (with S3 as the primary store the directory is not where backups are). The sentence, or null.
 */
export async function missingBackupDir(config: Pick<Config, 'backupDir' | 's3'>): Promise<string | null> {
  if (config.s3?.mode === 'primary') return null;
  return backupDirProblem(resolve(config.backupDir));
}
