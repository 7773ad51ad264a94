/** The postgres room's door: backups with pg_dump, the connection environment, and the counts a restore test compares. */
export { runBackup, DATABASE_FILE, type BackupProgress, type RunBackupOptions } from './dump.ts';
export { GLOBALS_FILE } from './globals.ts';
export { cleanBaseEnv, parsePgUrl, pgClientConfig, serverLabel, withPgEnv } from './connection.ts';
export { countObjects, countRows } from './counts.ts';
export { openSnapshot, serverMajor, type DatabaseInfo, type Snapshot } from './snapshot.ts';
export { findPgTools, findZstd, type PgTools } from './tools.ts';
export { verifyArtifact, type VerifyMode, type VerifyResult } from './verify.ts';
export { classifyFailure, clientFailure, firstErrorLine, toolFailure } from './failures.ts';
