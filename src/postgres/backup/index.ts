/**
 * Logical backups' door: snapshot and counts, pg_dump → zstd [→ age] → storage with the hash taken on the way,
 * globals, and the read-back that checks what was written.
 */
export { runBackup, type BackupProgress, type RunBackupOptions } from './dump.ts';
export { describeDumpProgress, dumpEstimate, type DumpEstimate } from './dump-progress.ts';
export { DATABASE_FILE } from './dump-in-snapshot.ts';
export { GLOBALS_FILE } from './globals.ts';
export { openSnapshot, serverMajor, type DatabaseInfo, type Snapshot } from './snapshot.ts';
export { verifyArtifact, type VerifyMode, type VerifyResult } from './verify.ts';
