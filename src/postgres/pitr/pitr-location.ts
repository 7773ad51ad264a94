import type { Config } from '../../config-types.ts';

// Where the point-in-time archive is, decided from the config alone: kept apart from s3-pitr-store.ts so that what
// only asks (restore-pitr, base-backup, scrub on local storage) does not load the S3 client (~0.1 s of every start).

/** Whether S3 is the PITR archive itself (S3_MODE=primary): what is only on the worker's disk is not archived. */
export const pitrInS3 = (config: Pick<Config, 's3'>): boolean => config.s3?.mode === 'primary';

/** Where the PITR archive of every target is, for messages: `s3://bucket[/prefix]` (S3_MODE=primary) or BACKUP_DIR. */
export function pitrArchiveRoot(config: Pick<Config, 's3' | 'backupDir'>): string {
  const s3 = config.s3;
  if (s3?.mode !== 'primary') return config.backupDir;
  const p = s3.prefix.replace(/^\/+|\/+$/g, '');
  return `s3://${s3.bucket}${p ? `/${p}` : ''}`;
}
