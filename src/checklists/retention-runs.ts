import type { Queue } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';

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

/** Where the CLI's `retention` leaves its last run (REDIS_URL set), read beside the queue's jobs. */
// Not under `${prefix}:retention:`, which is BullMQ's keyspace of the retention queue (an obliterate would take it).
export const cliRetentionKey = (prefix: string) => `${prefix}:cli-retention:last`;

/** The CLI's run as the checklist reads it: its summary, or why it failed; kept 8 days. */
export async function recordCliRetention(
  redis: Pick<RedisConnection, 'set'>,
  prefix: string,
  run: { startedAt: Date; finishedAt: Date; summary: Summary & { failed?: number }; problem: string | null },
): Promise<void> {
  const ok = run.problem === null && !run.summary.failed;
  const value = {
    ok,
    dryRun: run.summary.dryRun ?? false,
    startedAt: run.startedAt.toISOString(),
    finishedAt: run.finishedAt.toISOString(),
    said: run.problem === null ? `${describe(run.summary)} (the CLI's \`retention\`)` : '',
    problem: run.problem ?? (run.summary.failed ? `${run.summary.failed} deletion(s) failed (the CLI's \`retention\`)` : null),
  };
  await redis.set(cliRetentionKey(prefix), JSON.stringify(value), 'PX', WINDOW_MS);
}

function cliRun(raw: string | null): RetentionRunSeen | null {
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Omit<RetentionRunSeen, 'startedAt' | 'finishedAt'> & { startedAt: string; finishedAt: string };
    return { ...v, startedAt: new Date(v.startedAt), finishedAt: new Date(v.finishedAt) };
  } catch {
    return null;
  }
}

/**
 * Reads the retention queue's finished jobs (kept a week by the queue's defaults) and the CLI's last run (QA: a
 * real `pg-backup-bot retention` was followed by "no retention run recorded"), the newer of the two. The worker
 * returns its RetentionSummary as the job's result and fails the job when a deletion failed or a storage was
 * unreadable.
 */
export function retentionRunsFromQueue(queue: Queue, cli?: { redis: Pick<RedisConnection, 'get'>; prefix: string }): RetentionRuns {
  return {
    async last(now) {
      const [fromQueue, fromCli] = await Promise.all([
        lastQueued(queue, now),
        cli ? cli.redis.get(cliRetentionKey(cli.prefix)).then(cliRun, () => null) : Promise.resolve(null),
      ]);
      const recent = fromCli && now.getTime() - fromCli.finishedAt.getTime() <= WINDOW_MS ? fromCli : null;
      if (!recent) return fromQueue;
      return !fromQueue || recent.finishedAt > fromQueue.finishedAt ? recent : fromQueue;
    },
  };
}

async function lastQueued(queue: Queue, now: Date): Promise<RetentionRunSeen | null> {
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
}
