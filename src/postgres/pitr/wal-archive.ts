import type { Logger } from '../../logger.ts';
import { type ArchiveOptions, archiveSpool } from './archiver.ts';
import { purgeLeftovers } from './diverged.ts';
import { type ReceiverState, superviseReceiver } from './receiver.ts';
import type { WalEntry } from './wal-store.ts';

/** What the archive of one target knows about itself, for `/backup status` and health. */
export interface WalArchiveState {
  receiver: ReceiverState;
  /** The newest WAL file archived (stored and indexed), and when. */
  lastArchived: { name: string; at: Date } | null;
  /** Why the last archiving pass stopped short, if it did. */
  archiveError: string | null;
}

export interface WalArchiveOptions extends ArchiveOptions {
  target: string;
  pgReceivewal: string;
  replicationUrl: string;
  slot: string;
  spool: string;
  log: Logger;
  /** How often the spool is swept for completed segments (default 1 s). */
  sweepMs?: number;
  onState?: (s: WalArchiveState) => void;
  backoff?: { minMs: number; maxMs: number };
  /** receiver.ts upAfterMs: how long a restarted receiver must run to count as up again (default 10 s). */
  upAfterMs?: number;
  /** How long what failovers leave in the spool is kept (diverged.ts purgeLeftovers): the WAL's retention. */
  keepLeftoversMs?: number;
  /** Why nothing may be written to the spool or the store now (receiver.ts `precondition`): nothing is received or archived then. */
  precondition?: () => Promise<string | null>;
  guardEveryMs?: number;
}

/**
 * A continuous WAL archive for one target, with no agent on the database host: pg_receivewal supervised
 * (receiver.ts) writes the spool, and every completed segment is compressed, encrypted, hashed, stored and
 * indexed (archiver.ts) before it is removed from there.
 */
export function startWalArchive(o: WalArchiveOptions): {
  state(): WalArchiveState;
  sweep(): Promise<WalEntry[]>;
  /** `sweep: false` (a lost WAL lease): the spool is left to the new holder, which archives it; default true. */
  stop(options?: { sweep?: boolean }): Promise<void>;
} {
  const state: WalArchiveState = { receiver: { up: false, since: new Date() }, lastArchived: null, archiveError: null };
  const changed = () => o.onState?.({ ...state });
  // The precondition's last answer: while it stands, the spool is not archived either (into a store on the wrong disk).
  let blocked: string | null = null;
  const precondition = o.precondition;
  const receiver = superviseReceiver({
    pgReceivewal: o.pgReceivewal,
    url: o.replicationUrl,
    slot: o.slot,
    spool: o.spool,
    log: o.log,
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.upAfterMs !== undefined ? { upAfterMs: o.upAfterMs } : {}),
    ...(precondition
      ? {
          precondition: async () => {
            blocked = await precondition().catch((err: unknown) => {
              blocked = null;
              throw err;
            });
            return blocked;
          },
        }
      : {}),
    ...(o.guardEveryMs !== undefined ? { guardEveryMs: o.guardEveryMs } : {}),
    onState: (r) => {
      state.receiver = r;
      changed();
    },
  });
  let sweeping: Promise<WalEntry[]> | null = null;
  const sweep = () => {
    if (blocked) {
      const why = `not archiving: ${blocked}`;
      if (state.archiveError !== why) {
        state.archiveError = why;
        changed();
      }
      return Promise.resolve([]);
    }
    sweeping ??= (async () => {
      try {
        const { archived, failure } = await archiveSpool(o.spool, o);
        const last = archived.filter((e) => !e.name.endsWith('.history')).at(-1);
        // When it was archived: its entry's time is how far its WAL reaches, which a backlog puts well before now.
        if (last) state.lastArchived = { name: last.name, at: new Date() };
        state.archiveError = failure ? failure.message : null;
        if (failure) o.log.error({ err: failure, target: o.target }, 'WAL archiving stopped short; retrying');
        if (last || failure) changed();
        return archived;
      } finally {
        sweeping = null;
      }
    })();
    return sweeping;
  };
  // Hourly, and at the first sweep: what failovers left in the spool, once older than the retention.
  let purgedAt = 0;
  const purge = async () => {
    if (o.keepLeftoversMs === undefined || Date.now() - purgedAt < 3600_000) return;
    purgedAt = Date.now();
    const removed = await purgeLeftovers(o.spool, o.keepLeftoversMs, new Date());
    if (removed.length) o.log.info({ target: o.target, removed }, "removed what failovers left in the WAL spool, older than the archive's retention");
  };
  const timer = setInterval(
    () =>
      void sweep()
        .catch(() => undefined)
        .then(purge)
        .catch((err: unknown) => o.log.warn({ err, target: o.target }, 'what failovers left in the WAL spool could not be removed')),
    o.sweepMs ?? 1000,
  );
  // What earlier runs archived is the newest until this one archives more (QA: "nothing archived yet" after every
  // restart, until a quiet server filled a segment).
  void o.store
    .list()
    .then((entries) => {
      const newest = entries.filter((e) => !e.name.endsWith('.history')).at(-1);
      if (!newest || state.lastArchived) return;
      state.lastArchived = { name: newest.name, at: new Date(newest.storedAt ?? newest.archivedAt) };
      changed();
    })
    .catch((err: unknown) => o.log.warn({ err, target: o.target }, 'the archive could not be listed at start'));
  return {
    state: () => ({ ...state }),
    sweep,
    async stop(options) {
      clearInterval(timer);
      await receiver.stop();
      await (sweeping ?? Promise.resolve());
      // What pg_receivewal completed before it stopped is archived now, not at the next start.
      if (options?.sweep !== false) await sweep().catch(() => undefined);
    },
  };
}
