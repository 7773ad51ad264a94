import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { coalesceFresh } from '../coalesce.ts';
import type { BaseBackupJobData } from './base-backup-data.ts';
import { type Enqueued, enqueueOnce, withDeadline } from './producers.ts';

/**
 * One base backup per target at a time, as backupEnqueuer does for dumps: a running one (a schedule's job carries no
 * deduplication id) is looked for first and answered with; otherwise BullMQ's deduplication (`base-backup-<target>`)
 * lets one request in while another is waiting or running.
 */
export function baseBackupEnqueuer(queue: Queue<BaseBackupJobData>): (data: BaseBackupJobData) => Promise<Enqueued> {
  const activeJobs = coalesceFresh(() => queue.getJobs(['active']));
  return async (data) => {
    const active = await withDeadline(1000, activeJobs(undefined), 'looking for a running base backup');
    const running = active.find((j) => j?.data?.target === data.target);
    if (running?.id) return { jobId: running.id, duplicate: true };
    return enqueueOnce(queue, 'base-backup', data, `base-backup-${data.target}-${randomUUID()}`, `base-backup-${data.target}`, 'queueing the base backup');
  };
}
