import type { AgeIdentity } from '../../crypto/age.ts';
import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import { findPgTools, findZstd, type PgTools, parsePgDumpVersion } from '../tools.ts';
import type { Archive, ArchiveReadOptions } from './archive.ts';
import { type ChecksumResult, verifyChecksums } from './checksums.ts';
import { openArchive } from './open-archive.ts';

/** What the restore test, the selective restore and the listing share to read a stored backup. */

/** pg_restore must be at least as new as the pg_dump that wrote the archive. */
export function dumpMajor(m: Manifest): number {
  return parsePgDumpVersion(m.database.pgDumpVersion) ?? Math.floor(m.database.serverVersionNum / 10000);
}

export type RestoreTools = PgTools & { zstd: string };

/** The PostgreSQL tools matched to the dump's major, and zstd. */
export async function restoreTools(o: { manifest: Manifest; pgBinDir?: string | undefined; zstdPath?: string | undefined }): Promise<RestoreTools> {
  const tools = await findPgTools({ serverMajor: dumpMajor(o.manifest), pgBinDir: o.pgBinDir });
  return { ...tools, zstd: await findZstd(o.zstdPath) };
}

/** openArchive with the caller's temp dir, input and age CLI; the signal may be the caller's or one of its own. */
export function openStoredArchive(
  o: ArchiveReadOptions,
  tools: RestoreTools,
  run: { identity: AgeIdentity | undefined; signal: AbortSignal | undefined; log: Logger },
): Promise<Archive> {
  return openArchive({
    manifest: o.manifest,
    storage: o.storage,
    zstd: tools.zstd,
    pgRestore: tools.pgRestore,
    tempDir: o.tempDir,
    input: o.input,
    signal: run.signal,
    identity: run.identity,
    agePath: o.agePath,
    log: run.log,
  });
}

/** A cleanup that fails leaves a temp file, not a wrong result: it is logged, never thrown. */
export async function closeArchive(archive: Archive | undefined, log: Logger): Promise<void> {
  await archive?.close().catch((err: unknown) => log.warn({ err }, 'could not remove the decompressed archive'));
}

/** pg_restore -j: `wanted` (default 2) from a file; a stream can feed only one job. */
export function restoreJobs(archive: Archive, wanted: number | undefined): number {
  return archive.input === 'file' ? Math.max(1, Math.floor(wanted ?? 2)) : 1;
}

/** Checksums with their wall time, which counts towards the verification time of the record. */
export type Checksums = ChecksumResult & { ms: number };

export async function timedChecksums(o: Pick<ArchiveReadOptions, 'manifest' | 'storage' | 'signal'>): Promise<Checksums> {
  const t0 = Date.now();
  const sums = await verifyChecksums({ manifest: o.manifest, storage: o.storage, signal: o.signal });
  return { ...sums, ms: Date.now() - t0 };
}
