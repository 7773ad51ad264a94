import type { Job, Worker } from 'bullmq';
import type { Logger } from '../logger.ts';

/** What a lost job's message says happened (the processor never got to say anything). */
export const LOST_JOB_REASON = 'the worker running it stopped before it finished (its process crashed, was killed or lost Redis), and BullMQ gave the job up';

/**
 * Calls `handle` for each job of `worker`'s queue that BullMQ failed without running our processor: a job whose
 * worker stopped renewing its lock (process killed, host gone) is "stalled". The stalled-job check puts it back in
 * the queue; past maxStalledCount it also marks it with a deferred failure, and the next worker to take it fails
 * it at once with that reason instead of running it, emitting `failed` there (one worker, whichever host). Our
 * processors never fail a job that way, so a deferred failure is the sign. Without this a lost backup would say
 * "running" in the channel forever and page nobody until the health check found the target stale.
 */
export function watchLostJobs<T>(worker: Worker<T>, handle: (job: Job<T>) => Promise<void>, log: Logger): void {
  worker.on('failed', (job: Job<T> | undefined) => {
    if (!job?.deferredFailure) return;
    log.error({ jobId: job.id, queue: worker.name, failedReason: job.failedReason }, 'job lost: its worker stopped mid-run');
    handle(job).catch((err: unknown) => log.error({ err, jobId: job.id, queue: worker.name }, 'could not report a lost job'));
  });
}
