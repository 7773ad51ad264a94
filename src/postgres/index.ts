/**
 * The postgres room's door: backups with pg_dump, the connection environment, the counts a restore test compares,
 * restore tests in scratch databases and selective restores.
 */
export { runBackup, DATABASE_FILE, type BackupProgress, type RunBackupOptions } from './dump.ts';
export { GLOBALS_FILE } from './globals.ts';
export { cleanBaseEnv, parsePgUrl, pgClientConfig, serverLabel, withPgEnv } from './connection.ts';
export { countObjects, countRows } from './counts.ts';
export { openSnapshot, serverMajor, type DatabaseInfo, type Snapshot } from './snapshot.ts';
export { findPgTools, findZstd, type PgTools } from './tools.ts';
export { verifyArtifact, type VerifyMode, type VerifyResult } from './verify.ts';
export { classifyFailure, clientFailure, firstErrorLine, toolFailure } from './failures.ts';
export { runRestoreTest, type RestoreTestOptions, type RestoreTestOutcome, type RestoreTestPhase } from './restore-test.ts';
export {
  runSelectiveRestore,
  type SelectiveRestoreOptions,
  type SelectiveRestoreOutcome,
  type SelectiveRestorePhase,
} from './selective-restore.ts';
export { createDatabase, databaseUrl, dropDatabase, dropLeftoverScratchDatabases, isScratchName, scratchName, SCRATCH_PREFIX } from './scratch.ts';
export { verifyChecksums, type ChecksumResult } from './checksums.ts';
export { compareCounts, type Comparison } from './compare.ts';
export type { SmokeQuery } from './restored-checks.ts';
export type { RestoredTable } from './restored-tables.ts';
