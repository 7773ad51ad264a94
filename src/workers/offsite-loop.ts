import type { Logger } from '../logger.ts';
import { mirrorOnce, newMirrorMemory } from '../postgres/pitr/offsite-mirror.ts';
import type { S3PitrStore } from '../postgres/pitr/s3-pitr-store.ts';
import type { LocalWalStore } from '../postgres/pitr/wal-store.ts';
import type { StoredWalState } from '../jobs/wal-state.ts';

/** The off-site copy's part of the WAL state (jobs/wal-state.ts), as the last pass left it. */
export type OffsiteState = Pick<
  StoredWalState,
  'offsiteWhere' | 'offsiteNewest' | 'offsitePending' | 'offsiteCheckedAt' | 'offsiteError' | 'offsiteFailingSince' | 'offsiteRole'
> & {
  /** S3_MODE=primary: when `offsiteNewest` reached the bucket (its `lastArchivedAt`). */
  newestSeenAt?: string;
  /** S3_MODE=primary: where the newest partial snapshot uploaded reaches (for the RPO; not stored in Redis). */
  partialEnd?: string;
};

/**
 * Copies the target's PITR archive to S3 every `everyMs` while this worker holds the WAL lease (one copier per
 * target, like the receiver). A failed pass is retried at the next; `onState` hears each pass, so `/backup status`
 * and the `wal-offsite` condition see how far the copy is and since when it fails.
 */
export function startOffsiteMirror(o: {
  root: string;
  local: LocalWalStore;
  remote: S3PitrStore;
  everyMs: number;
  log: Logger;
  onState: (s: OffsiteState) => void;
  /** S3_MODE=primary: the bucket is the archive, each local copy removed once its file is there (offsite-mirror.ts). */
  primary?: boolean;
}): { stop(): Promise<void> } {
  const stop = new AbortController();
  const memory = newMirrorMemory();
  let failingSince: string | undefined;
  let partialEnd: string | undefined;
  const where = o.remote.describe();
  const role = o.primary ? { offsiteRole: 'primary' as const } : {};
  o.onState({ offsiteWhere: where, offsiteCheckedAt: new Date().toISOString(), ...role });
  const loop = (async () => {
    while (!stop.signal.aborted) {
      const pass = await mirrorOnce({ root: o.root, local: o.local, remote: o.remote, memory, signal: stop.signal, primary: o.primary ?? false });
      const now = new Date().toISOString();
      // Kept through a failed pass: what was uploaded is still in the bucket.
      partialEnd = pass.partialEnd ?? partialEnd;
      if (pass.failure) {
        failingSince ??= now;
        o.log.warn({ err: pass.failure.message }, 'copying the WAL archive off-site failed; retrying');
      } else failingSince = undefined;
      if (pass.copiedWal + pass.copiedBases > 0) o.log.debug({ wal: pass.copiedWal, bases: pass.copiedBases, where }, 'copied PITR archive off-site');
      if (pass.spoolRemoved > 0) o.log.debug({ removed: pass.spoolRemoved }, 'removed spooled files the bucket holds');
      o.onState({
        ...role,
        ...(pass.newestWalAt ? { newestSeenAt: pass.newestWalAt.toISOString() } : {}),
        ...(partialEnd ? { partialEnd } : {}),
        offsiteWhere: where,
        ...(pass.newestWal ? { offsiteNewest: pass.newestWal } : {}),
        offsitePending: String(pass.pendingWal),
        offsiteCheckedAt: now,
        ...(pass.failure ? { offsiteError: pass.failure.message.split('\n')[0]?.slice(0, 300) ?? '' } : {}),
        ...(failingSince ? { offsiteFailingSince: failingSince } : {}),
      });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, o.everyMs);
        stop.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  })();
  return {
    async stop() {
      stop.abort();
      await loop;
    },
  };
}
