import type { Config } from '../config.ts';
import { BotError, toUserMessage } from '../errors.ts';
import { formatBytes } from '../format.ts';
import type { Logger } from '../logger.ts';
import { LocalStorage } from './local-storage.ts';
import type { Artifact, Manifest } from './manifest.ts';
import type { S3StorageOptions } from './s3-storage.ts';
import { s3ErrorName } from './s3-errors.ts';
import type { ArtifactWriter, Storage } from './types.ts';
import { streamVerified } from './verified-stream.ts';

export interface CopyResult {
  destination: string;
  backupId: string;
  bytes: number;
  durationMs: number;
  /** The destination already held this very backup (same files, same checksums): nothing was sent. */
  alreadyThere: boolean;
}

export type CopyOutcome = (CopyResult & { ok: true }) | { ok: false; destination: string; backupId: string; code: string; error: string };

/** Same files, sizes and checksums: the same backup, whatever else the manifests say. */
export function sameArtifacts(a: Manifest, b: Manifest): boolean {
  const key = (m: Manifest) => JSON.stringify(m.artifacts.map((x) => [x.file, x.bytes, x.sha256]).sort());
  return key(a) === key(b);
}

/** Reserves the backup on `to`; a leftover unfinished copy (a crashed earlier attempt) is discarded first. */
async function reserve(to: Storage, m: Manifest): Promise<'reserved' | 'already-there'> {
  try {
    await to.beginBackup(m.target, m.backupId);
    return 'reserved';
  } catch (err) {
    if (!(err instanceof BotError && err.code === 'backup_exists')) throw err;
  }
  const existing = await to.readManifest(m.target, m.backupId).catch((err: unknown) => {
    if (err instanceof BotError && err.code === 'backup_not_found') return null;
    throw err;
  });
  if (existing && sameArtifacts(existing, m)) return 'already-there';
  if (existing) throw new BotError('backup_exists', `A different backup named ${m.backupId} already exists in ${to.describe()}; it was left untouched.`);
  await to.discardUnfinished(m.target, m.backupId);
  await to.beginBackup(m.target, m.backupId);
  return 'reserved';
}

/**
 * Streams one artifact, hashing and counting on the way; any difference from the manifest fails the copy. `replacing`:
 * over a damaged backup's file (Storage.createArtifactWriter), which stays until the new one is whole.
 */
async function copyArtifact(
  from: Storage,
  to: Storage,
  m: Manifest,
  a: Artifact,
  writers: ArtifactWriter[],
  signal?: AbortSignal,
  replacing?: boolean,
): Promise<void> {
  const source = await from.openArtifact(m.target, m.backupId, a.file);
  const writer = await to.createArtifactWriter(m.target, m.backupId, a.file, replacing ? m : undefined).catch((err: unknown) => {
    source.destroy();
    throw err;
  });
  writers.push(writer);
  const mismatch = (what: string) =>
    new BotError(
      'storage_failed',
      `Copying backup ${m.backupId} to ${to.describe()} failed: ${a.file} read from ${from.describe()} ${what}; that copy of the backup may be corrupt, and the partial copy was removed.`,
    );
  await streamVerified(source, writer.stream, a, 'the manifest records', mismatch, signal);
  await writer.commit();
}

/**
 * Copies one finished backup from one storage to another: every artifact streamed and verified against the
 * manifest (bytes and sha256) on the way, then the manifest, last, so the copy exists only once it is whole.
 * On any failure the partial copy is discarded and the error says which backup, where and why.
 */
export async function copyBackup(from: Storage, to: Storage, manifest: Manifest, o: { log: Logger; signal?: AbortSignal }): Promise<CopyResult> {
  const started = Date.now();
  const log = o.log.child({ backupId: manifest.backupId, destination: to.describe() });
  const canceled = () => new BotError('canceled', `Copying backup ${manifest.backupId} to ${to.describe()} was canceled; the partial copy was removed.`);
  const result = (alreadyThere: boolean): CopyResult => ({
    destination: to.describe(),
    backupId: manifest.backupId,
    bytes: manifest.artifacts.reduce((s, a) => s + a.bytes, 0),
    durationMs: Date.now() - started,
    alreadyThere,
  });
  if (o.signal?.aborted) throw canceled();
  if ((await reserve(to, manifest)) === 'already-there') {
    log.info('backup already copied; nothing to do');
    return result(true);
  }
  const writers: ArtifactWriter[] = [];
  try {
    for (const a of manifest.artifacts) await copyArtifact(from, to, manifest, a, writers, o.signal);
    if (o.signal?.aborted) throw canceled();
    // Written last: from this moment on the copy exists.
    await to.writeManifest(manifest);
    const r = result(false);
    log.info({ bytes: r.bytes, ms: r.durationMs }, 'backup copied');
    return r;
  } catch (err) {
    log.warn({ err }, 'copy failed; discarding the partial copy');
    for (const w of writers) await w.abort().catch(() => undefined);
    await to.discardUnfinished(manifest.target, manifest.backupId).catch((e: unknown) => log.error({ err: e }, 'could not discard the partial copy'));
    if (o.signal?.aborted) throw canceled();
    if (err instanceof BotError) {
      if (err.userMessage.startsWith(`Copying backup ${manifest.backupId}`)) throw err;
      throw new BotError(err.code, `Copying backup ${manifest.backupId} to ${to.describe()} failed: ${err.userMessage}`, { cause: err });
    }
    throw new BotError(
      'storage_failed',
      `Copying backup ${manifest.backupId} to ${to.describe()} failed (${s3ErrorName(err)}); the partial copy was removed.`,
      {
        cause: err,
      },
    );
  }
}

/** Of a local disk, what a rewrite must leave free: the backups that run beside it write there too. */
export const REWRITE_RESERVE = 0.05;

/**
 * A local rewrite writes the whole replacement beside the damaged file: refused, before a byte is written, when it
 * would take the disk's last room, where a backup running at the same time would fail for want of space.
 */
async function roomToRewrite(to: Storage, a: Artifact): Promise<void> {
  const disk = to.freeSpace ? await to.freeSpace() : null;
  if (!disk || disk.freeBytes - a.bytes >= disk.totalBytes * REWRITE_RESERVE) return;
  throw new BotError(
    'storage_failed',
    `${a.file} (${formatBytes(a.bytes)}) was not rewritten: ${to.describe()} has ${formatBytes(disk.freeBytes)} free of ${formatBytes(disk.totalBytes)}, and the rewrite would leave less than ${REWRITE_RESERVE * 100} % of it for the backups; free space there`,
  );
}

/**
 * Rewrites the files of a backup damaged on `to` from the same backup on `from`, in place: each verified against the
 * manifest on the way, the damaged file kept until its replacement is whole, nothing deleted. The manifest and the
 * damage mark stay: the caller reads the result back and clears the mark (storage/copy-scrub.ts).
 */
export async function rewriteDamaged(from: Storage, to: Storage, m: Manifest, signal?: AbortSignal): Promise<void> {
  for (const a of m.artifacts) {
    await roomToRewrite(to, a);
    const writers: ArtifactWriter[] = [];
    try {
      await copyArtifact(from, to, m, a, writers, signal, true);
    } catch (err) {
      for (const w of writers) await w.abort().catch(() => undefined);
      throw err;
    }
  }
}

/**
 * Copies a fresh backup to every copy target, one after the other, and never throws: each outcome says where
 * and, on failure, why in one sentence, for the backup's verdict. The primary backup stands either way.
 */
export async function copyToAll(
  from: Storage,
  copies: readonly Storage[],
  manifest: Manifest,
  o: { log: Logger; signal?: AbortSignal },
): Promise<CopyOutcome[]> {
  const out: CopyOutcome[] = [];
  for (const to of copies) {
    try {
      out.push({ ok: true, ...(await copyBackup(from, to, manifest, o)) });
    } catch (err) {
      const code = err instanceof BotError ? err.code : 'internal';
      out.push({ ok: false, destination: to.describe(), backupId: manifest.backupId, code, error: toUserMessage(err) });
    }
  }
  return out;
}

/**
 * The storages the config asks for: S3 as the primary (`S3_MODE=primary`) or the local directory with S3 as
 * a copy target (`S3_MODE=copy`, the default when S3_BUCKET is set), or the local directory alone. The AWS SDK
 * is loaded only when S3 is configured: it is about 20 MiB of every process's memory and a tenth of a second of
 * every CLI start that would never use it.
 */
export async function createStorageFromConfig(
  config: Pick<Config, 'backupDir' | 's3'>,
  log: Logger,
  extra: Pick<S3StorageOptions, 'credentials' | 'maxAttempts' | 'partSizeBytes' | 'queueSize'> = {},
): Promise<{ primary: Storage; copies: Storage[] }> {
  const s3 = config.s3
    ? new (await import('./s3-storage.ts')).S3Storage({
        bucket: config.s3.bucket,
        prefix: config.s3.prefix,
        region: config.s3.region,
        ...(config.s3.endpoint ? { endpoint: config.s3.endpoint } : {}),
        forcePathStyle: config.s3.forcePathStyle,
        log,
        ...extra,
      })
    : null;
  if (s3 && config.s3?.mode === 'primary') return { primary: s3, copies: [] };
  return { primary: new LocalStorage(config.backupDir, log), copies: s3 ? [s3] : [] };
}
