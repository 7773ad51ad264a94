import type { Config } from '../../config-types.ts';
import type { Logger } from '../../logger.ts';
import { mapLimit } from '../../storage/s3-objects.ts';
import type { BaseBackup } from './base-backup.ts';
import { type S3PitrStore, s3PitrStore } from './s3-pitr-store.ts';
import { pitrInS3 } from './pitr-location.ts';
import { listBaseBackups } from './pitr-restore.ts';
import { withPartials } from './partial-store.ts';
import { LocalWalStore, type WalEntry } from './wal-store.ts';
import { segmentPosition, type WindowWal, walGaps } from './window.ts';

/**
 * The PITR archive as S3 holds it, for the readers that judge it (window, gaps, `/backup list`, health, restores,
 * retention) when S3 is the primary store (S3_MODE=primary): one listing says which segments are there (entry and
 * file both, the file of the size its entry records), and their entries are read from S3. An entry is written once
 * and never changed, so each process reads it once and keeps it (by bucket, prefix and name; a few hundred bytes a
 * segment): remoteArchive's first reading in a process costs one GET per segment (32 at a time), later ones a
 * listing and the new entries; remoteWindowWal reads only the entries the window's times come from.
 */

const known = new Map<string, WalEntry>();
const keyOf = (remote: S3PitrStore, name: string) => `${remote.describe()}/${name}`;

/** As a fresh process starts: nothing known (tests count what a first reading costs). */
export function forgetRemoteEntries(): void {
  known.clear();
}

/** What this process uploaded itself (offsite-mirror.ts) need not be read back to be known. */
export function rememberRemoteEntry(remote: S3PitrStore, entry: WalEntry): void {
  known.set(keyOf(remote, entry.name), entry);
}

export interface RemoteArchive {
  bases: BaseBackup[];
  wal: WalEntry[];
}

/** Every WAL file and base backup in S3 that a recovery could use, in the shapes the local archive's readers take. */
export async function remoteArchive(remote: S3PitrStore): Promise<RemoteArchive> {
  const [bases, listed] = await Promise.all([remote.listBases(), remote.listWal()]);
  const present = listed.filter((w) => w.file !== null);
  const unread = present.filter((w) => !known.has(keyOf(remote, w.name)));
  await mapLimit(unread, 32, async (w) => {
    const e = await remote.walEntry(w.name);
    if (e) known.set(keyOf(remote, w.name), e);
  });
  const wal = present.flatMap((w) => {
    const e = known.get(keyOf(remote, w.name));
    // A file cut short, or another file than the entry names, cannot be fetched as recorded: a gap.
    return e && e.file === w.file && e.bytes === w.fileBytes ? [e] : [];
  });
  return { bases, wal };
}

/**
 * The window's reading (health/wal-facts.ts: `/backup list`, `/backup status`, health, /metrics — the first two on
 * Slack's 3 s): the same listing, but of the index entries only those whose time can end a stretch (window.ts: the
 * newest segment's, and the last one's before each gap), so a process's first reading costs a handful of GETs,
 * not one per segment. The other segments carry the time the bucket received their entry, as the time they were
 * stored: later than the truth, so the window's start read from one (a base backup's end segment) is never too
 * early. A segment counts when its entry and file are both listed, as on disk (sizes are checked when it is read).
 * With the newest snapshot of the partial segment there (offsite-partials.ts), as of the time it reaches.
 */
export async function remoteWindowWal(remote: S3PitrStore): Promise<{ bases: BaseBackup[]; wal: WindowWal[] }> {
  const [bases, listed, partials] = await Promise.all([remote.listBases(), remote.listWal(), remote.listPartials()]);
  const present = listed.filter((w) => w.file !== null);
  const segments = present.filter((w) => !w.name.endsWith('.history'));
  // History files first (a few tiny entries): their record of each switch is how the window follows a promotion
  // (lane.ts), and which segments are gaps along it.
  const entryOf = async (w: (typeof present)[number]) => {
    const e = known.get(keyOf(remote, w.name)) ?? (await remote.walEntry(w.name));
    if (e) known.set(keyOf(remote, w.name), e);
    return e && e.file === w.file && e.bytes === w.fileBytes ? e : null;
  };
  const histories = (await Promise.all(present.filter((w) => w.name.endsWith('.history')).map(entryOf))).flatMap((e) => (e ? [e] : []));
  // The last one before every gap (one per run of missing segments): each can end a stretch (review: with two gaps,
  // the window between them ended at the time the bucket received its last segment, later than what it holds).
  // And each timeline's newest: it ends that timeline's window when the window is an older timeline's, or lists it
  // beside (window.ts switched, priorTimeline; review: it ended at the time the bucket received it).
  const newestOf = new Map(segments.map((w) => [segmentPosition(w.name).timeline, w] as const));
  const needed = new Set([segments.at(-1), ...newestOf.values()]);
  const gapNs = new Set(walGaps(bases, [...segments, ...histories]).map((g) => segmentPosition(g).n));
  segments.forEach((w, i) => {
    const next = segments[i + 1];
    if (next && gapNs.has(segmentPosition(w.name).n + 1)) needed.add(w);
  });
  const read = await Promise.all([...needed].flatMap((w) => (w ? [entryOf(w)] : [])));
  // A file cut short among them changes which entries the window reads: then every entry is read.
  if (read.some((e) => e === null)) return remoteArchive(remote).then((a) => ({ bases: a.bases, wal: withPartials(a.wal, partials) }));
  const whole = present.map((w): WindowWal => {
    const e = known.get(keyOf(remote, w.name));
    if (!e) return { name: w.name, archivedAt: w.indexedAt.toISOString(), storedAt: w.indexedAt.toISOString() };
    return {
      name: w.name,
      archivedAt: e.archivedAt,
      ...(e.reachedBy ? { reachedBy: e.reachedBy } : {}),
      ...(e.storedAt ? { storedAt: e.storedAt } : {}),
      ...(e.forks ? { forks: e.forks } : {}),
    };
  });
  return { bases, wal: withPartials(whole, partials) };
}

/** The S3 store when S3 is the PITR archive itself (S3_MODE=primary), else null: the archive is BACKUP_DIR. */
export function primaryPitrStore(config: Pick<Config, 's3'>, target: string, o: { log?: Logger | undefined } = {}): S3PitrStore | null {
  return pitrInS3(config) ? s3PitrStore(config, target, o) : null;
}

/** `fn` with the primary store of a target, its client closed after. */
export async function withPrimaryStore<T>(config: Pick<Config, 's3'>, target: string, fn: (remote: S3PitrStore) => Promise<T>): Promise<T | null> {
  const remote = primaryPitrStore(config, target);
  if (!remote) return null;
  try {
    return await fn(remote);
  } finally {
    remote.client.destroy();
  }
}

/** The base backups of a target where the archive is: the bucket (S3_MODE=primary) or BACKUP_DIR. Oldest first. */
export async function archiveBases(config: Pick<Config, 's3' | 'backupDir'>, target: string): Promise<BaseBackup[]> {
  return (await withPrimaryStore(config, target, (r) => r.listBases())) ?? (await listBaseBackups(config.backupDir, target));
}

/** The WAL a base backup's check waits for (base-wal.ts), where the archive is: only what the bucket holds counts there. */
export function archiveWalList(
  config: Pick<Config, 's3' | 'backupDir'>,
  target: string,
): { list(): Promise<ReadonlyArray<Pick<WalEntry, 'name'>>>; close(): void } {
  const remote = primaryPitrStore(config, target);
  if (!remote) {
    const local = new LocalWalStore(config.backupDir, target);
    return { list: () => local.list(), close: () => undefined };
  }
  // Names are all it needs: a segment is in the bucket when its entry and file are both listed.
  return { list: async () => (await remote.listWal()).filter((w) => w.file !== null), close: () => remote.client.destroy() };
}
