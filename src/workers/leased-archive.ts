import type { RedisConnection } from '../redis-client.ts';
import { holdLease, type LeaseTiming } from '../jobs/wal-lease.ts';
import type { Logger } from '../logger.ts';
import { freeSlot } from '../postgres/pitr/slot-takeover.ts';
import type { startWalArchive, WalArchiveState } from '../postgres/pitr/wal-archive.ts';

type Archive = ReturnType<typeof startWalArchive>;

/**
 * One target's WAL archive, run only while this worker holds the target's WAL lease (jobs/wal-lease.ts): taken →
 * the slot freed of a previous holder's connection (postgres/pitr/slot-takeover.ts), then the archive started;
 * lost → its receiver stopped at once, the spool left to the new holder; stopped → the archive stopped (its last
 * completed segments archived), then the lease released so another worker takes over without waiting for the TTL.
 * Starts and stops run one after the other, so a stop never overtakes the start it undoes.
 */
export function leasedArchive(o: {
  redis: RedisConnection;
  key: string;
  token: string;
  timing?: Partial<LeaseTiming> | undefined;
  url: string;
  slot: string;
  log: Logger;
  start(): Archive;
  /** After a clean stop of the archive, before the lease is released: say the stream is down (it is, until another takes it). */
  onStopped?(last: WalArchiveState): Promise<void>;
}): { stop(): Promise<void>; holding(): boolean } {
  let archive: Archive | null = null;
  let chain: Promise<void> = Promise.resolve();
  const next = (f: () => Promise<void>) => {
    chain = chain.then(f).catch((err: unknown) => o.log.error({ err }, 'WAL archive: start or stop failed'));
  };
  const lease = holdLease({
    redis: o.redis,
    key: o.key,
    token: o.token,
    timing: o.timing ?? {},
    log: o.log,
    onAcquired: () =>
      next(async () => {
        if (!lease.holding()) return;
        const freed = await freeSlot(o.url, o.slot);
        if (freed.ended !== null) o.log.warn({ slot: o.slot, pid: freed.ended }, 'ended the previous receiver’s connection to the slot');
        if (freed.problem) o.log.warn({ slot: o.slot, problem: freed.problem }, 'the slot may still be held by the previous receiver');
        // Lost while the slot was being freed: the next holder starts instead.
        if (lease.holding() && !archive) archive = o.start();
      }),
    onLost: () => {
      const a = archive;
      archive = null;
      // At once, not behind a start still freeing the slot: the TTL is running.
      const stopped = a?.stop({ sweep: false });
      next(async () => {
        await stopped;
      });
    },
  });
  const stopArchive = async () => {
    await chain;
    const a = archive;
    archive = null;
    await a?.stop();
    return a;
  };
  return {
    holding: () => lease.holding(),
    async stop() {
      await lease.stop(async () => {
        const a = await stopArchive();
        if (a) await o.onStopped?.(a.state()).catch((err: unknown) => o.log.debug({ err }, 'WAL state not written'));
      });
      await stopArchive();
    },
  };
}
