import type { Job, Queue } from 'bullmq';
import { isBotError } from '../errors.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import type { BackupOwner, Storage } from '../storage/index.ts';

/**
 * A worker killed mid-dump (SIGKILL, OOM, host lost) never reaches runBackup's catch, so the directory it was
 * writing stays, `.partial` files and all; retention would keep it for 24 h, and a worker that crash-loops would fill
 * the backup disk. So each attempt is recorded twice before its dump starts: in the job's data (`attemptBackupIds`)
 * and in the reservation itself (a `.reserved` marker naming the job). Then:
 *   - the retry of the job removes what its earlier attempts left unfinished, before it starts its own;
 *   - the worker that reports the job lost (its retry died too) removes it (backup-worker.ts lostBackupHandler);
 *   - a starting worker removes unfinished backups whose job is no longer active, on any worker host.
 * A directory with a manifest is a finished backup and is never touched here (discardUnfinished refuses it too).
 */

/** The job as a reservation names it; none without an id (then nobody's leftover is judged by its job). */
export function backupOwner(job: Job<BackupJobData>): BackupOwner | undefined {
  return job.id ? { queue: job.queueQualifiedName, jobId: job.id } : undefined;
}

/**
 * Removes what earlier attempts of this job left unfinished. Returns the ids that are still there (the removal failed,
 * or the manifest could not be read): the next attempt, or the lost-job report, tries them again.
 */
export async function discardEarlierAttempts(storage: Storage, job: Job<BackupJobData>, log: Logger): Promise<string[]> {
  const left: string[] = [];
  for (const backupId of job.data.attemptBackupIds ?? []) {
    const state = await manifestState(storage, job.data.target, backupId);
    if (state === 'finished') continue; // an earlier attempt that got as far as its manifest: a backup, retention's to judge
    if (state !== 'none') {
      log.warn({ err: state.error, backupId }, "could not tell whether an earlier attempt's backup is finished; left as it is");
      left.push(backupId);
      continue;
    }
    try {
      await storage.discardUnfinished(job.data.target, backupId);
      log.warn({ backupId }, 'removed the unfinished backup of an earlier attempt of this job (its worker stopped mid-run)');
    } catch (err) {
      log.error({ err, backupId }, 'could not remove the unfinished backup of an earlier attempt of this job');
      left.push(backupId);
    }
  }
  return left;
}

/** A manifest that is there but does not parse counts as unknown: damage for a person to look at, not ours to delete. */
async function manifestState(storage: Storage, target: string, backupId: string): Promise<'finished' | 'none' | { error: unknown }> {
  try {
    await storage.readManifest(target, backupId);
    return 'finished';
  } catch (err) {
    return isBotError(err) && err.code === 'backup_not_found' ? 'none' : { error: err };
  }
}

export interface BackupAttempt {
  owner: BackupOwner | undefined;
  /** Records the reserved id in the job's data: called by runBackup before the dump starts. */
  record(backupId: string): Promise<void>;
}

/** Starts an attempt of a backup job: earlier attempts' leftovers removed, this one's id recorded once reserved. */
export async function startBackupAttempt(storage: Storage, job: Job<BackupJobData>, log: Logger): Promise<BackupAttempt> {
  const left = await discardEarlierAttempts(storage, job, log);
  return {
    owner: backupOwner(job),
    async record(backupId) {
      try {
        await job.updateData({ ...job.data, attemptBackupIds: [...left, backupId] });
      } catch (err) {
        // Not worth failing a backup for: the reservation's marker still names the job for a starting worker.
        log.warn({ err, backupId }, 'could not record the backup id in the job');
      }
    },
  };
}

/**
 * At worker start: removes unfinished backups whose job (named in their reservation, on our queue) is not active.
 * The directories are listed first and the active jobs read after: a job that reserved a directory we saw was active
 * by then, so it is still active unless it has finished (its manifest is written, or its own catch discarded it) or
 * died. A retry never reuses an earlier attempt's name (a new id, taken seconds later). Never throws: a start-up must
 * not fail on housekeeping.
 */
export async function removeAbandonedBackups(storage: Storage, queue: Pick<Queue<BackupJobData>, 'qualifiedName' | 'getJobs'>, log: Logger): Promise<string[]> {
  if (!storage.listReserved) return [];
  const removed: string[] = [];
  try {
    const ours = (await storage.listReserved()).filter((r) => r.owner?.queue === queue.qualifiedName);
    if (ours.length === 0) return [];
    const active = new Set((await queue.getJobs(['active'])).map((j) => j?.id));
    for (const r of ours) {
      if (active.has(r.owner?.jobId)) continue;
      try {
        await storage.discardUnfinished(r.target, r.backupId);
        removed.push(r.backupId);
      } catch (err) {
        log.warn({ err, backupId: r.backupId }, 'could not remove an unfinished backup left by a job that is no longer running');
      }
    }
    if (removed.length > 0) log.warn({ removed, storage: storage.describe() }, 'removed unfinished backups left by jobs that are no longer running');
  } catch (err) {
    log.warn({ err }, 'could not look for unfinished backups left by jobs that are no longer running');
  }
  return removed;
}
