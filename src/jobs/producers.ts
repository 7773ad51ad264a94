import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { coalesceFresh } from '../coalesce.ts';
import { withDeadline } from '../deadline.ts';
import type { ChecklistJob } from './checklist-data.ts';
import type { BackupJobData, RestoreJobData, RestoreTestJobData } from './queues.ts';

export interface Enqueued {
  jobId: string;
  /** True when a job for the same target was already waiting or running and no new one was created. */
  duplicate: boolean;
}

export { withDeadline } from '../deadline.ts';

/**
 * Adds a job unless one with the same deduplication id is still waiting or running: BullMQ keeps the key until
 * the job finishes and returns the id of the job already there instead of creating a second one.
 */
export async function enqueueOnce<T>(queue: Queue<T>, name: string, data: T, jobId: string, dedupId: string, what: string): Promise<Enqueued> {
  // Queue<T>.add's name/data types are generic over the queue's declared names; the cast keeps call sites typed.
  const job = await withDeadline(2000, (queue as unknown as Queue).add(name, data, { jobId, deduplication: { id: dedupId } }), what);
  const id = job.id ?? jobId;
  return { jobId: id, duplicate: id !== jobId };
}

/**
 * One backup per target at a time. Deduplication covers the jobs made here; a schedule's job carries none
 * (BullMQ ignores it for scheduler jobs), so a running backup of the target is looked for first and answered
 * with like a duplicate. The worker's per-target lock (redis-lock.ts) covers the moment in between.
 *
 * Made once per queue: concurrent requests share the look-up of running jobs (coalesceFresh), so fifty `/backup
 * now` at once read the active list twice instead of fifty times (each read is a range plus one HGETALL per active
 * job), and each request still sees the queue as it was after it arrived. BullMQ's deduplication decides,
 * atomically in Redis, which single request creates the job; a request that comes while an add for its target is
 * on its way waits for that add and is answered with its job, which deduplication would have returned to it anyway
 * (one add for a burst, not fifty). When that add fails, the request makes its own.
 */
export function backupEnqueuer(queue: Queue<BackupJobData>): (data: BackupJobData) => Promise<Enqueued> {
  const activeJobs = coalesceFresh(() => queue.getJobs(['active']));
  const adding = new Map<string, Promise<Enqueued>>();
  return async (data) => {
    const active = await withDeadline(1000, activeJobs(undefined), 'looking for a running backup');
    const running = active.find((j) => j?.data?.target === data.target);
    if (running?.id) return { jobId: running.id, duplicate: true };
    const pending = adding.get(data.target);
    const first = pending ? await pending.catch(() => null) : null;
    if (first) return { jobId: first.jobId, duplicate: true };
    const add = enqueueOnce(queue, 'backup', data, `backup-${data.target}-${randomUUID()}`, `backup-${data.target}`, 'queueing the backup');
    adding.set(data.target, add);
    try {
      return await add;
    } finally {
      if (adding.get(data.target) === add) adding.delete(data.target);
    }
  };
}

/** One checklist of a kind at a time: a double-submitted `/backup checklist daily` posts one list. */
export function enqueueChecklist(queue: Queue<ChecklistJob>, kind: 'daily' | 'weekly' | 'monthly'): Promise<Enqueued> {
  return enqueueOnce(queue, 'checklist', { kind }, `checklist-${kind}-${randomUUID()}`, `checklist-${kind}`, 'queueing the checklist');
}

/** One restore test per backup at a time; tests of different backups run side by side (each has its own scratch db). */
export function enqueueRestoreTest(queue: Queue<RestoreTestJobData>, data: RestoreTestJobData & { backupId: string }): Promise<Enqueued> {
  return enqueueOnce(queue, 'restore-test', data, `restore-test-${data.target}-${randomUUID()}`, `restore-test-${data.backupId}`, 'queueing the restore test');
}

/** One PITR restore test per target at a time: each lays out a whole cluster. */
export function enqueuePitrTest(queue: Queue<RestoreTestJobData>, data: RestoreTestJobData & { pitr: { at: string } }): Promise<Enqueued> {
  return enqueueOnce(
    queue,
    'pitr-restore-test',
    data,
    `pitr-test-${data.target}-${randomUUID()}`,
    `pitr-restore-test-${data.target}`,
    'queueing the PITR restore test',
  );
}

/**
 * One restore into a given database of a given server (`host:port`) at a time: two overwriting the same tables would
 * race. The caller must tell a `duplicate` apart: the job named is the one already there, restoring what it was
 * asked, not this request (QA: a second replacement was answered as started, with the first one's job).
 */
export function enqueueRestore(queue: Queue<RestoreJobData>, data: RestoreJobData, server: string): Promise<Enqueued> {
  return enqueueOnce(queue, 'restore', data, `restore-${data.target}-${randomUUID()}`, `restore-into-${server}/${data.into.database}`, 'queueing the restore');
}
