/**
 * Restores' door: archives read back from storage (checksums, decryption, decompression), scratch databases,
 * restore tests and their checks, selective restores.
 */
export { runRestoreTest, type RestoreTestOptions, type RestoreTestOutcome, type RestoreTestPhase } from './restore-test.ts';
export {
  runSelectiveRestore,
  type SelectiveRestoreOptions,
  type SelectiveRestoreOutcome,
  type SelectiveRestorePhase,
} from './selective-restore.ts';
export {
  createDatabase,
  databaseExists,
  databaseUrl,
  dropDatabase,
  dropLeftoverScratchDatabases,
  isScratchName,
  scratchName,
  SCRATCH_PREFIX,
} from './scratch.ts';
export { onlyRolesFailed, verifyChecksums, type ChecksumResult } from './checksums.ts';
export { compareCounts, type Comparison } from './compare.ts';
export { listStoredBackup } from './list-archive.ts';
export type { SmokeQuery } from './restored-checks.ts';
export type { RestoredTable } from './restored-tables.ts';
export { fetchArtifact, type FetchArtifactOptions, type FetchedArtifact } from './fetch.ts';
export { checkIdentityOpensBackup, identityFor } from './decryption.ts';
export {
  databaseSizes,
  describeDatabase,
  reopenAfterDeadSwap,
  replacedName,
  stagingName,
  swapDatabases,
  type DatabaseInUse,
  withReplacementLock,
} from './swap.ts';
export { applyGlobals, restoreGlobalsOf, rolesLeft, rolesLine, type GlobalsApplied } from './globals-apply.ts';
