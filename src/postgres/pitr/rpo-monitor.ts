import { join } from 'node:path';
import type { Logger } from '../../logger.ts';
import { readdirIfExists } from '../../storage/fs-util.ts';
import type { ArchiveOptions } from './archiver.ts';
import { formatLsn, higher, parseLsn, SEGMENT_BYTES, SEGMENT_NAME, segmentEndLsn, segmentPosition } from './lsn.ts';
import { backlogBefore, receiving, snapshotPartial, snapshotWritten } from './partial-archiver.ts';
import type { PartialWalStore } from './partial-store.ts';
import { positionSampler, type ServerPosition } from './position-sampler.ts';
import { archivedEnds, partialInterval, type PositionSample, type RpoState, RpoTracker } from './rpo.ts';

export type { RpoState } from './rpo.ts';

export interface RpoMonitorOptions extends ArchiveOptions {
  target: string;
  /** The target's ordinary connection (its backups'), for its WAL position (position-sampler.ts). */
  url: string;
  slot: string;
  spool: string;
  partials: PartialWalStore;
  objectiveSeconds: number;
  /** The newest completed segment archived by this process (wal-archive.ts), if any yet. */
  newestArchived(): string | null;
  /** Whether a segment is archived whole (default: in `store`; the bucket too with S3_MODE=primary): only then is its snapshot removed. */
  archivedWhole?(name: string): Promise<boolean>;
  /** Whether this process's receiver is up: only then is the spool's partial segment its own and current. */
  receiverUp(): boolean;
  log: Logger;
  onState?: (s: RpoState) => void;
  sampleMs?: number; // how often the server is asked (default 2 s)
  /** The most often the partial segment is stored (default min(objective / 4, 30 s), at least 1 s). */
  partialEveryMs?: number;
  /** S3_MODE=primary: the archive is the bucket, `store` the spool; its newest segment or uploaded snapshot counts. */
  inS3?: { newestAtStart(): Promise<string | null>; partialEnd(): bigint };
  /** The samples, shared with the archive, which stamps each segment by them (segment-time.ts); default its own. */
  tracker?: RpoTracker;
  /** What the previous holder of the stream last measured (its state in Redis, read before this one wrote any), to start from. */
  previous?: () => Promise<PositionSample[]>;
}

/** The most WAL a new segment's first snapshot holds to be taken before its interval has passed. */
const EARLY_BYTES = 1024n * 1024n;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Measures the RPO of one target while its WAL archive runs: every few seconds the server's position is sampled
 * (position-sampler.ts), the segment pg_receivewal is writing is stored when it has grown and its interval has
 * passed (partial-archiver.ts), snapshots superseded by their completed segment are removed, and the RPO is read
 * against the end of the newest WAL in the archive (rpo.ts).
 */
export function startRpoMonitor(o: RpoMonitorOptions): {
  state(): RpoState;
  tick(): Promise<void>;
  /** One sample of the server's position into the tracker, without the rest of a tick (segment-time.ts sampleNow). */
  sample(): Promise<void>;
  stop(): Promise<void>;
} {
  const sampler = positionSampler(o.url, o.slot);
  const tracker = o.tracker ?? new RpoTracker();
  const every = o.partialEveryMs ?? partialInterval(o.objectiveSeconds);
  let state: RpoState = { objectiveSeconds: o.objectiveSeconds };
  const ends = archivedEnds();
  let lastSnapshot = 0;
  let cleaned: string | null = null;
  let started: Promise<void> | null = null;
  let flushedSeen: { lsn: bigint | null; at: Date } | null = null;

  // What an earlier run archived counts from the start: the newest segment and snapshot in the store.
  const init = async () => {
    const newestInS3 = o.inS3 ? await o.inS3.newestAtStart() : null;
    if (newestInS3) ends.onNewer(newestInS3);
    if (newestInS3) ends.full = segmentEndLsn(newestInS3);
    const [full, partial] = await Promise.all([o.inS3 ? [] : o.store.list(), o.partials.list()]);
    const newest = full.filter((e) => !e.name.endsWith('.history')).at(-1);
    if (newest) ends.onNewer(newest.name);
    if (newest) ends.full = segmentEndLsn(newest.name);
    for (const p of [...partial].sort((a, b) => (a.name < b.name ? -1 : 1))) ends.onNewer(p.name);
    for (const p of partial) if (segmentPosition(p.name).timeline === ends.on && parseLsn(p.walEnd) > ends.partial) ends.partial = parseLsn(p.walEnd);
    // Its samples seed this tracker: read the WAL beyond the archive from when the previous holder saw it begin.
    const earlier = await (o.previous?.() ?? Promise.resolve([])).catch((err: unknown) => {
      o.log.warn({ err, target: o.target }, "the previous measurement of the RPO could not be read; counting from this worker's first sample");
      return [];
    });
    tracker.seed(earlier);
  };

  const snapshot = async (pos: ServerPosition, spooled: string[]) => {
    const writing = receiving(spooled);
    if (writing) ends.onNewer(writing);
    const flushed = pos.flushed;
    if (flushed === null || !o.receiverUp() || flushed <= ends.partial || flushed <= ends.full) return;
    // A new segment's first snapshot at once while small (the rest is zeros): a busy server's last segment reaches only
    // its sample before the switch, and a base backup it ends has no window until WAL after it is archived (review).
    const start = flushed - (flushed % BigInt(SEGMENT_BYTES));
    const early = ends.partial < start && flushed - start <= EARLY_BYTES;
    if (!early && Date.now() - lastSnapshot < every) return;
    // What the snapshot holds covers the server up to the last moment it had written nothing beyond it, not up to
    // now: a receiver that stopped reporting (frozen, or behind) has a flushed position the server left long ago
    // (QA: the window then reached past WAL the archive did not hold).
    const covers = tracker.coveredAt(flushed);
    if (!covers) return;
    const name = writing;
    if (!name) return;
    // Completed segments before it still wait to be archived (the stream just came back with a backlog): a snapshot
    // now would stand in the archive after a run of segments not in it yet, read as a gap (QA: a false gap page).
    if (backlogBefore(spooled, name)) return;
    try {
      // Stamped by the server's clock, as `covers` is: the time it was stored may open a base backup's window.
      const now = () => new Date(Date.now() + tracker.skewMs());
      const entry = await snapshotPartial(join(o.spool, name), name.slice(0, 24), flushed, covers, { ...o, now, partials: o.partials });
      if (entry) {
        ends.partial = flushed;
        lastSnapshot = Date.now();
      }
      delete state.partialError;
    } catch (err) {
      state.partialError = `the partial segment ${name.slice(0, 24)} could not be archived: ${message(err)}`;
      o.log.error({ err, target: o.target }, 'partial WAL snapshot failed; retrying');
    }
  };

  // A snapshot whose completed segment is archived is superseded (not by a history file: QA, NaN every 2 s).
  const cleanUp = async () => {
    const newest = o.newestArchived();
    if (!newest || newest === cleaned || !SEGMENT_NAME.test(newest)) return;
    ends.onNewer(newest);
    ends.full = higher(ends.full, segmentEndLsn(newest));
    await o.partials.removeSupersededBy(newest, o.archivedWhole ?? (async (n) => (await o.store.entry(n)) !== null));
    cleaned = newest;
  };

  // Samples are added in the order they were taken (coveredAt reads them newest first): one at a time, whoever asks.
  let sampling: Promise<unknown> = Promise.resolve();
  const takeSample = (): Promise<ServerPosition> => {
    const next = sampling.then(async () => {
      if (stopped) throw new Error('the RPO monitor has stopped');
      const pos = await sampler.sample();
      tracker.add({ at: pos.at, seenAt: pos.seenAt, skewMs: pos.clockSkewMs, lsn: pos.current });
      return pos;
    });
    sampling = next.catch(() => undefined);
    return next;
  };

  let chain: Promise<void> = Promise.resolve();
  // One tick at a time, whoever asks (the timer, a test, the archive stamping a segment); none once stopped (its
  // sample would open the connection stop() closed).
  const tick = () => {
    if (stopped) return Promise.resolve();
    const next = chain.then(() => (stopped ? undefined : measure()));
    chain = next.catch(() => undefined);
    return next;
  };

  const measure = async () => {
    started ??= init().catch((err: unknown) => {
      started = null;
      throw err;
    });
    try {
      await started;
    } catch (err) {
      // Where the archive stands is not known (S3_MODE=primary: the bucket cannot be listed): the RPO is unknown, said.
      state = { ...state, error: `the archive could not be read: ${message(err).split('\n')[0]}` };
      o.onState?.({ ...state });
      throw err;
    }
    await cleanUp().catch((err: unknown) => o.log.warn({ err, target: o.target }, 'superseded partial WAL not removed'));
    // Listed before the sample: a segment gone from it was stored before the sample, so a snapshot after it covers
    // a time after that (window.ts opens a base backup's window from the time a segment was stored).
    const spooled = await readdirIfExists(o.spool).catch(() => [] as string[]);
    let pos: ServerPosition;
    try {
      pos = await takeSample();
    } catch (err) {
      state = { ...state, error: `the server could not be asked for its WAL position: ${message(err)}` };
      o.onState?.({ ...state });
      // Gone with its receiver (a crash): what pg_receivewal wrote is stored (QA: up to 30 s of commits left in the spool).
      const name = o.receiverUp() ? undefined : receiving(spooled);
      if (!name || backlogBefore(spooled, name)) return;
      const at = { ...o, after: higher(ends.full, ends.partial), coveredAt: (lsn: bigint) => tracker.coveredAt(lsn) };
      const entry = await snapshotWritten(join(o.spool, name), name.slice(0, 24), at).catch(
        (e: unknown) => void o.log.error({ err: e }, 'last WAL not stored'),
      );
      if (entry) ends.partial = parseLsn(entry.walEnd);
      return;
    }
    // The worker's clock: health compares it with the measurement's time and its own "now".
    if (!flushedSeen || flushedSeen.lsn !== pos.flushed) flushedSeen = { lsn: pos.flushed, at: pos.seenAt };
    await snapshot(pos, spooled);
    // A server on a newer timeline than anything archived (a promotion the receiver has not followed yet): compared
    // by position, the old timeline's WAL stood above what it writes and the RPO read 0 (QA). Not known, said.
    if (ends.on > 0 && pos.timeline > ends.on) {
      state = {
        ...state,
        error: `the server writes timeline ${pos.timeline}, and the archive holds none of it yet (the receiver has not followed the promotion)`,
      };
      o.onState?.({ ...state });
      return;
    }
    // S3_MODE=primary: a snapshot counts once it is in the bucket, not when it is on the worker's disk.
    const counted = o.inS3 ? o.inS3.partialEnd() : ends.partial;
    const archived = higher(ends.full, counted);
    const now = new Date();
    const reading = tracker.read(now, archived);
    const { error: _gone, behindSince: _was, ...rest } = state;
    state = {
      ...rest,
      measuredAt: now,
      rpoMs: reading.rpoMs,
      ...(reading.behindSince ? { behindSince: reading.behindSince } : {}),
      currentLsn: formatLsn(pos.current),
      archivedLsn: formatLsn(archived),
      ...(pos.flushed !== null ? { flushedLsn: formatLsn(pos.flushed), flushedMovedAt: flushedSeen.at } : {}),
      clockSkewMs: pos.clockSkewMs,
    };
    o.onState?.({ ...state });
  };

  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    running = tick()
      .catch((err: unknown) => o.log.error({ err, target: o.target }, 'RPO measurement failed'))
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, o.sampleMs ?? 2000);
      });
  };
  loop();
  return {
    state: () => ({ ...state }),
    tick,
    sample: async () => void (await takeSample()),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await chain;
      await sampling;
      await sampler.close();
    },
  };
}
