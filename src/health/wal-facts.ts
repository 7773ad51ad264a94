import type { Config } from '../config.ts';
import { isBotError, toUserMessage } from '../errors.ts';
import { serverLabel } from '../postgres/connection.ts';
import { readSlot } from '../postgres/pitr/slot-state.ts';
import { recoverableWal } from '../postgres/pitr/partial-store.ts';
import { archiveDamage, archivedBases } from '../postgres/pitr/wal-index.ts';
import { remoteWindowWal, withPrimaryStore } from '../postgres/pitr/s3-archive.ts';
import type { BaseBackup } from '../postgres/pitr/base-backup.ts';
import { promotionTo } from '../postgres/pitr/lane.ts';
import { type RecoverableWindow, recoverableWindow, type WindowWal, walGaps } from '../postgres/pitr/window.ts';
import { DEFAULT_SLOT_MAX_BYTES, type WalArchiveFacts, type WalHealthFacts, type WalSlotFacts } from './wal-types.ts';

// The server's or the file system's own words (a refused connection, a timeout, a bad index file): they name no secret.
const messageOf = (err: unknown) =>
  isBotError(err) ? toUserMessage(err) : err instanceof Error ? (err.message.split('\n')[0] ?? '').slice(0, 200) : String(err).slice(0, 200);

/**
 * The archive's window and gaps, from the cached index (postgres/pitr/wal-index.ts); with S3 as the primary store,
 * from the bucket (s3-archive.ts): the worker's spool is not the archive and counts for nothing here.
 */
export async function readArchiveFacts(config: Config, target: string): Promise<WalArchiveFacts> {
  const none = { baseBackups: 0, newestSegment: null, gaps: [], reachesNewest: true, window: null, earlier: null };
  try {
    const local = async () => {
      const [bases, wal] = await Promise.all([archivedBases(config.backupDir, target), recoverableWal(config.backupDir, target)]);
      return { bases, wal, ...(await archiveDamage(config.backupDir, target)) };
    };
    // In the bucket: whole segments, and the partial segment's newest snapshot there, as recoverableWal has them.
    const read: { bases: BaseBackup[]; wal: WindowWal[]; lost?: string[]; setAside?: { wal: string[]; bases: string[] } } =
      (await withPrimaryStore(config, target, remoteWindowWal)) ?? (await local());
    const { bases, wal, lost, setAside } = read;
    const w = recoverableWindow(bases, wal);
    const gaps = w?.gaps ?? walGaps(bases, wal);
    return {
      baseBackups: bases.length,
      newestSegment: wal.filter((e) => !e.name.endsWith('.history')).at(-1)?.name ?? null,
      gaps,
      reachesNewest: w ? w.reachesNewest : gaps.length === 0,
      ...(w?.gap ? { gap: w.gap } : {}),
      window: w ? { from: w.from, to: w.to } : null,
      ...(w && w.opens.timeline !== w.timeline ? { followed: { from: w.opens.timeline, to: w.timeline } } : {}),
      earlier: w?.earlier ? { from: w.earlier.from, to: w.earlier.to, gap: w.earlier.gap } : null,
      ...(w?.switched ? { switched: w.switched } : {}),
      ...promotionOf(w, wal),
      ...(w?.priorTimeline
        ? { priorTimeline: { from: w.priorTimeline.from, to: w.priorTimeline.to, timeline: w.priorTimeline.timeline, forkedAt: w.priorTimeline.forkedAt } }
        : {}),
      ...(lost?.length ? { lost } : {}),
      ...(setAside && setAside.wal.length + setAside.bases.length > 0 ? { setAside } : {}),
    };
  } catch (err) {
    return { ...none, unreadable: messageOf(err) };
  }
}

const promotionOf = (w: RecoverableWindow | null, wal: WindowWal[]) => {
  const p = w && w.timeline > 1 ? promotionTo(wal, w.timeline) : null;
  return p ? { promotion: p } : {};
};

/** The slot on the source server, asked once through the target's normal connection. */
export async function readSlotFacts(config: Config, target: string): Promise<WalSlotFacts> {
  const t = config.targets.find((x) => x.name === target);
  const name = t?.pitr?.slot ?? `pgbb_${target}`;
  const limitBytes = t?.pitr?.slotMaxBytes ?? DEFAULT_SLOT_MAX_BYTES;
  if (!t) return { name, limitBytes, error: `no target named ${target} is configured` };
  const server = serverLabel(t.url);
  try {
    return { name, limitBytes, server, ...(await readSlot(t.url, name)) };
  } catch (err) {
    return { name, limitBytes, server, error: messageOf(err) };
  }
}

/** What `wal-gap` and `wal-slot` judge, read in parallel. */
export async function readWalHealthFacts(config: Config, target: string): Promise<WalHealthFacts> {
  const [archive, slot] = await Promise.all([readArchiveFacts(config, target), readSlotFacts(config, target)]);
  return { archive, slot };
}
