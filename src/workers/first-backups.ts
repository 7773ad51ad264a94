import type { Queue } from 'bullmq';
import type { Config, TargetConfig } from '../config.ts';
import { backupEnqueuer } from '../jobs/producers.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import type { Storage } from '../storage/index.ts';

/** The label the channel message and the manifest carry: people see why a backup ran at an odd hour. */
export const FIRST_BACKUP_LABEL = 'first backup';

/**
 * The first backup of a target, shaped like one of its scheduled backups (the one kept longest), so its retention
 * and the per-class stale limits treat it as that schedule's; a target with no schedule gets a manual one.
 */
export function firstBackupData(target: Pick<TargetConfig, 'name' | 'policy'>): BackupJobData {
  const requestedBy = { source: 'schedule', userName: 'first backup at start' } as const;
  const kept = [...target.policy.backups].sort((a, b) => b.keepDays - a.keepDays)[0];
  if (!kept) return { target: target.name, kind: 'manual', label: FIRST_BACKUP_LABEL, requestedBy };
  return {
    target: target.name,
    kind: 'scheduled',
    label: FIRST_BACKUP_LABEL,
    requestedBy,
    schedule: { id: kept.id, retentionClass: kept.retentionClass, keepDays: kept.keepDays },
  };
}

/**
 * At worker start, queues a backup of every target that has no finished backup and no backup queued or running: a
 * new install is protected within minutes, not at the first scheduled run (02:00), and its "no backup yet" never
 * has to page. Idempotent across workers starting at once: the backup deduplication id (`backup-<target>`, the one
 * `/backup now` uses) lets one job in while another is waiting or running. Problems are logged, never fatal.
 */
export async function takeFirstBackups(deps: {
  config: Pick<Config, 'targets'>;
  storage: Storage;
  queue: Queue<BackupJobData>;
  log: Logger;
}): Promise<string[]> {
  const queued: string[] = [];
  let pending: Set<string>;
  try {
    const [busy, delayed] = await Promise.all([deps.queue.getJobs(['active', 'waiting', 'prioritized']), deps.queue.getJobs(['delayed'])]);
    // A schedule's next run always waits, delayed, in the queue: only other delayed jobs (a backup waiting for
    // its target's lock) mean a backup is on its way.
    pending = new Set([...busy, ...delayed.filter((j) => !j?.repeatJobKey)].flatMap((j) => (j?.data?.target ? [j.data.target] : [])));
  } catch (err) {
    deps.log.warn({ err }, 'could not look for queued backups; no first backup taken');
    return queued;
  }
  const enqueue = backupEnqueuer(deps.queue);
  for (const target of deps.config.targets) {
    if (pending.has(target.name)) continue;
    try {
      if ((await deps.storage.list(target.name)).length > 0) continue;
      const { jobId, duplicate } = await enqueue(firstBackupData(target));
      if (!duplicate) queued.push(jobId);
      deps.log.info({ target: target.name, jobId, duplicate }, 'no backup of this target yet: taking its first one now');
    } catch (err) {
      deps.log.warn({ err, target: target.name }, 'could not queue the first backup of a target');
    }
  }
  return queued;
}
