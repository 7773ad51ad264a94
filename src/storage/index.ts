/** The storage room's door: where backups live and how to find them. */
export type { ArtifactWriter, Storage, UnfinishedBackup } from './types.ts';
export { LocalStorage } from './local-storage.ts';
export {
  findBackup,
  findRestorable,
  latestBackup,
  latestGoodBackup,
  listWithTestVerdicts,
  newestGoodSentence,
  newestGoodWithin,
  type PassedOver,
  passedOverSentence,
  targetOfBackupId,
} from './catalog.ts';
export {
  ArtifactSchema,
  BackupIdSchema,
  BackupKind,
  ManifestSchema,
  ObjectCountsSchema,
  RetentionClass,
  TableCountSchema,
  makeBackupId,
  totalBytes,
  totalRows,
  type Artifact,
  type Manifest,
  type ObjectCounts,
  type TableCount,
} from './manifest.ts';
export { RECORDS_DIR } from './record-files.ts';
export { RecordIdSchema, RecordKind, RestoreRecordSchema, newRecordId, type RestoreRecord } from './restore-record.ts';
// Types only: the S3 module (and the AWS SDK) loads when S3 is configured (createStorageFromConfig).
export type { S3Storage, S3StorageOptions } from './s3-storage.ts';
export { copyBackup, copyToAll, createStorageFromConfig, type CopyOutcome, type CopyResult } from './copy.ts';
export { reserveBackupId, strayBackups } from './catalog.ts';
export { fsyncDir, statfsNearest } from './fs-util.ts';
export { RequestedBy } from './manifest.ts';
export { TABLE_PARTS, type Definitions, type TableDefinition, type TablePart } from './manifest-definitions.ts';
export { notRunTestRecord, recordHead, restoreRecord } from './restore-record.ts';
export { retentionFor } from './retention.ts';
export { failedRestoreTestIds, planRetention, retentionReport } from './retention-plan.ts';
export { type BackupsInUse, type RetentionRun, type StorageRetention, runRetention } from './retention-run.ts';
export type { BackupOwner } from './types.ts';
