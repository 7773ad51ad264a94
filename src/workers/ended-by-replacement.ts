import { isBotError } from '../errors.ts';
import { type EndedBy, takeEndedBy } from '../jobs/replacement-marks.ts';
import type { BackupGates } from './backup-gates.ts';

/** Thrown by a backup a replacement's swap ended: the processor runs it again once the swap is done. */
export class EndedByReplacement extends Error {}

/**
 * What ended this failed backup, when it was a replacement's swap: a lost connection (what ending its sessions gives),
 * a mark under its job id (jobs/replacement-marks.ts), and a swap that began after this attempt did. Anything else —
 * another error, an attempt that started after the swap — fails and pages as before (review).
 */
export async function endedByReplacement(deps: { lock?: BackupGates | undefined }, jobId: string, err: unknown, startedAt: Date): Promise<EndedBy | null> {
  if (!deps.lock || !isBotError(err) || err.code !== 'pg_unreachable') return null;
  return takeEndedBy(deps.lock.redis, deps.lock.prefix, jobId, startedAt.getTime()).catch(() => null);
}

/** The channel message while it waits to run again. */
export const restartedText = (e: EndedBy) =>
  `starting again: the replacement of ${e.database} (restore job ${e.restoreJobId}) ended its first attempt when it swapped the databases; it backs up the restored database (the one replaced is kept as ${e.keptAs})`;
