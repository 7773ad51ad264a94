import { Worker } from 'bullmq';
import type { Deps } from '../deps.ts';
import { baseBackupEnqueuer } from '../jobs/base-backup-enqueue.ts';
import type { BaseBackupJobData } from '../jobs/base-backup-data.ts';
import { QUEUE } from '../jobs/queues.ts';
import { archiveBases } from '../postgres/pitr/s3-archive.ts';
import { baseBackupUnsupported } from '../postgres/pitr/take-base-backup.ts';
import { baseBackupProcessor, lostBaseBackupHandler } from './base-backup-worker.ts';
import { watchLostJobs } from './lost-jobs.ts';
import type { stallOptions } from './stall-settings.ts';

/** The label of the base backup a worker takes at start for a target that has none (no recoverable window without). */
export const FIRST_BASE_BACKUP_LABEL = 'first base backup';

/** The `base-backup` worker: one job at a time per process (a base backup reads the whole cluster); lost jobs reported. */
export function startBaseBackupWorker(
  deps: Deps,
  stall: ReturnType<typeof stallOptions>,
  o: { backupLockRetryMs?: number; progressIntervalMs?: number },
): Worker<BaseBackupJobData> {
  const workerDeps = {
    config: deps.config,
    notifier: deps.notifier,
    escalation: deps.escalation,
    redis: deps.workerRedis,
    log: deps.log.child({ worker: 'base-backup' }),
    ...(o.backupLockRetryMs !== undefined ? { lockRetryMs: o.backupLockRetryMs } : {}),
    ...(o.progressIntervalMs !== undefined ? { progressIntervalMs: o.progressIntervalMs } : {}),
  };
  const worker = new Worker<BaseBackupJobData>(QUEUE.baseBackup, baseBackupProcessor(workerDeps), {
    connection: deps.workerRedis,
    prefix: deps.config.queuePrefix,
    concurrency: 1,
    ...stall,
  });
  watchLostJobs(worker, lostBaseBackupHandler(workerDeps), deps.log);
  return worker;
}

/**
 * At worker start, a base backup of every `pitr` target that has none and none queued or running: without one
 * there is no recoverable window at all, whatever the WAL archive holds. Idempotent across workers starting at once
 * (deduplication id `base-backup-<target>`); problems are logged, never fatal.
 */
export async function takeFirstBaseBackups(deps: Pick<Deps, 'config' | 'queues' | 'log'>): Promise<string[]> {
  const queued: string[] = [];
  const targets = deps.config.targets.filter((t) => t.pitr && baseBackupUnsupported(deps.config, t) === null);
  if (targets.length === 0) return queued;
  const log = deps.log.child({ component: 'first-base-backup' });
  const queue = deps.queues.baseBackup;
  let pending: Set<string>;
  try {
    const [busy, delayed] = await Promise.all([queue.getJobs(['active', 'waiting', 'prioritized']), queue.getJobs(['delayed'])]);
    // The schedule's next run always waits, delayed: only other delayed jobs (one waiting for the lock) count.
    pending = new Set([...busy, ...delayed.filter((j) => !j?.repeatJobKey)].flatMap((j) => (j?.data?.target ? [j.data.target] : [])));
  } catch (err) {
    log.warn({ err }, 'could not look for queued base backups; no first base backup taken');
    return queued;
  }
  const enqueue = baseBackupEnqueuer(queue);
  for (const t of targets) {
    if (pending.has(t.name)) continue;
    try {
      if ((await archiveBases(deps.config, t.name)).length > 0) continue;
      const { jobId, duplicate } = await enqueue({
        target: t.name,
        label: FIRST_BASE_BACKUP_LABEL,
        requestedBy: { source: 'schedule', userName: 'first base backup at start' },
      });
      if (!duplicate) queued.push(jobId);
      log.info({ target: t.name, jobId, duplicate }, 'no base backup of this target yet: taking its first one now');
    } catch (err) {
      log.warn({ err, target: t.name }, 'could not queue the first base backup of a target');
    }
  }
  return queued;
}
