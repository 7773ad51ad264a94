import { type PartialEntry, withPartials } from './partial-store.ts';
import type { BaseBackup } from './base-backup.ts';
import { baseOnLane, laneOf, newestTimelineOf } from './lane.ts';
import type { WalEntry } from './wal-store.ts';
import { type RecoverableWindow, recoverableWindow, segmentOf, segmentPosition } from './window.ts';

/**
 * What PITR retention keeps and deletes for one target (pure). The policy (`pitr.walRetentionDays`, 7 by default):
 * every moment of the last N days stays recoverable. So the newest base backup that finished at or before now − N days
 * is kept, with every newer one; older ones are deleted, except one a restore is reading (pitr-readers.ts). WAL is
 * kept from the start segment of the oldest kept base backup on; WAL before it (segments, partial files, their index
 * entries) can serve no kept base backup and is deleted, and so are the history files of older timelines. The newest
 * base backup is never deleted. Without any base backup nothing is deleted: WAL alone cannot be judged.
 */
export interface PitrRetentionPlan {
  target: string;
  retentionDays: number;
  cutoff: Date;
  keepBases: Array<{ base: BaseBackup; reason: string }>;
  deleteBases: Array<{ base: BaseBackup; reason: string }>;
  /** Where kept WAL starts: the start segment of the oldest kept base backup; null when nothing is deleted. */
  walFrom: string | null;
  deleteWal: WalEntry[];
  before: RecoverableWindow | null;
  after: RecoverableWindow | null;
  /** Why nothing at all is deleted, when that is the case for a reason worth saying. */
  note: string | null;
}

/** The 24-hex segment a WAL file's name starts with (a segment, or a partial one), or null (a history file). */
const segmentName = (name: string) => /^[0-9A-F]{24}/.exec(name)?.[0] ?? null;

export function planPitrRetention(o: {
  target: string;
  bases: BaseBackup[];
  wal: WalEntry[];
  /** The partial segment's snapshots (partial-store.ts): never deleted here, but the window reaches as far as they do. */
  partials?: PartialEntry[];
  now: Date;
  retentionDays: number;
  /** Base backups a restore is reading now (unexpired readers). */
  reserved: ReadonlySet<string>;
  /** WAL indexed but not recoverable (its file lost, or set aside by the checksum scrub): deleted by age, never in a window. */
  unusable?: ReadonlySet<string>;
}): PitrRetentionPlan {
  const cutoff = new Date(o.now.getTime() - o.retentionDays * 86_400_000);
  const bases = [...o.bases].sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt));
  // The window as `/backup list` shows it: whole segments, and the newest snapshot of each segment not archived whole.
  const windowOf = (b: BaseBackup[], wal: WalEntry[]) =>
    recoverableWindow(
      b,
      withPartials(
        wal.filter((e) => !o.unusable?.has(e.name)),
        o.partials ?? [],
      ),
    );
  const before = windowOf(bases, o.wal);
  const plan: PitrRetentionPlan = {
    target: o.target,
    retentionDays: o.retentionDays,
    cutoff,
    keepBases: [],
    deleteBases: [],
    walFrom: null,
    deleteWal: [],
    before,
    after: before,
    note: null,
  };
  if (bases.length === 0) {
    plan.note = 'no base backup yet: WAL kept (it is judged against the base backups)';
    return plan;
  }
  // The newest base backup that covers the window's start; when none finished that long ago, the oldest one. Of
  // those recovery along the newest timeline can start from (lane.ts): an old primary's base backup taken past its
  // switch is on another branch, and keeping it instead deleted the older ones the window starts from (review).
  const lane = laneOf(o.wal, newestTimelineOf(o.wal));
  let first = 0;
  let onLane = -1;
  bases.forEach((b, i) => {
    if (Date.parse(b.finishedAt) > cutoff.getTime()) return;
    first = i;
    if (baseOnLane(b, lane)) onLane = i;
  });
  if (onLane !== -1) first = onLane;
  bases.forEach((base, i) => {
    if (i === first)
      plan.keepBases.push({
        base,
        reason: i === bases.length - 1 ? 'the newest base backup' : 'the newest that finished before the cutoff: the window starts with it',
      });
    else if (i > first) plan.keepBases.push({ base, reason: i === bases.length - 1 ? 'the newest base backup' : 'within the window' });
    else if (o.reserved.has(base.id)) plan.keepBases.push({ base, reason: 'older than the window, kept: a restore is reading it' });
    else plan.deleteBases.push({ base, reason: `older than the window (${o.retentionDays} days) and not needed to start it` });
  });
  const oldest = plan.keepBases.map((k) => k.base).sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt))[0] as BaseBackup;
  const from = segmentOf(oldest.startLsn, oldest.timeline);
  const start = segmentPosition(from);
  plan.walFrom = from;
  plan.deleteWal = o.wal.filter((e) => {
    const seg = segmentName(e.name);
    if (seg === null) {
      // `<timeline>.history`: needed for the kept base backups' timeline and any later one.
      return Number.parseInt(e.name.slice(0, 8), 16) < start.timeline;
    }
    const p = segmentPosition(seg);
    return p.timeline <= start.timeline && p.n < start.n;
  });
  const gone = new Set(plan.deleteWal.map((e) => e.name));
  plan.after = windowOf(
    plan.keepBases.map((k) => k.base).sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt)),
    o.wal.filter((e) => !gone.has(e.name)),
  );
  return plan;
}
