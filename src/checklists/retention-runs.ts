import type { Queue } from 'bullmq';

/** The last retention run as the retention worker left it: its job in the retention queue, with its summary. */
export interface RetentionRunSeen {
  ok: boolean;
  dryRun: boolean;
  startedAt: Date;
  finishedAt: Date;
  /** "deleted 3, cleaned 1 unfinished, kept 1 past its deadline". */
  said: string;
  /** Why a failed run failed. */
  problem: string | null;
}

export interface RetentionRuns {
  /** The newest run that finished within the last 8 days (a weekly checklist looks one week back), or null. */
  last(now: Date): Promise<RetentionRunSeen | null>;
}

const WINDOW_MS = 8 * 24 * 3600 * 1000;

interface Summary {
  dryRun?: boolean;
  deleted?: number;
  cleaned?: number;
  keptPastDeadline?: number;
}

function describe(s: Summary): string {
  const n = (v: number | undefined) => v ?? 0;
  const verb = s.dryRun ? 'dry run, would delete' : 'deleted';
  return `${verb} ${n(s.deleted)}, cleaned ${n(s.cleaned)} unfinished, kept ${n(s.keptPastDeadline)} past the deadline`;
}

/**
 * Reads the retention queue's finished jobs (kept a week by the queue's defaults). The worker returns its
 * RetentionSummary as the job's result and fails the job when a deletion failed or a storage was unreadable.
 */
export function retentionRunsFromQueue(queue: Queue): RetentionRuns {
  return {
    async last(now) {
      const [completed, failedJobs] = await Promise.all([queue.getJobs(['completed'], 0, 20, false), queue.getJobs(['failed'], 0, 20, false)]);
      const jobs = [...completed.map((job) => ({ job, failed: false })), ...failedJobs.map((job) => ({ job, failed: true }))].filter(
        (j) => j.job?.finishedOn !== undefined,
      );
      const found = jobs.sort((a, b) => (b.job.finishedOn ?? 0) - (a.job.finishedOn ?? 0))[0];
      if (!found?.job.finishedOn || now.getTime() - found.job.finishedOn > WINDOW_MS) return null;
      const { job: newest, failed } = found;
      const summary = (newest.returnvalue ?? {}) as Summary;
      const data = (newest.data ?? {}) as { dryRun?: boolean };
      return {
        ok: !failed,
        dryRun: summary.dryRun ?? data.dryRun ?? false,
        startedAt: new Date(newest.processedOn ?? newest.timestamp),
        finishedAt: new Date(found.job.finishedOn),
        said: failed ? '' : describe(summary),
        problem: failed ? newest.failedReason || 'no reason recorded' : null,
      };
    },
  };
}
