import { repairClaim, repairOwner } from '../jobs/redis-lock.ts';
import { startWalArchives } from './wal-archives.ts';
import { startPitrUpkeep } from './pitr-markers.ts';
import { Worker } from 'bullmq';
import type { Deps } from '../deps.ts';
import { QUEUE, type BackupJobData, type PagerJobData, type RestoreJobData, type RestoreTestJobData } from '../jobs/queues.ts';
import type { RetentionJobData } from '../schedules/index.ts';
import { backupProcessor, lostBackupHandler } from './backup-worker.ts';
import { watchLostJobs } from './lost-jobs.ts';
import { removeAbandonedBackups } from './backup-attempts.ts';
import { stallOptions, workerName } from './stall-settings.ts';
import { cappedBackoff, pagerDutyProcessor } from './pagerduty-worker.ts';
import { lostRestoreHandler, restoreProcessor } from './restore-worker.ts';
import { healthDepsOf, healthProcessor } from './health-worker.ts';
import { createTargetEvaluator, reevaluateAfterJobs } from './target-health.ts';
import { copyScrubState, redisScrubState } from '../storage/scrub.ts';
import { startupChecks } from './startup-checks.ts';
import { takeFirstBackups } from './first-backups.ts';
import { lostRestoreTestHandler, restoreTestProcessor } from './restore-test-worker.ts';
import { dropLeftovers } from './scratch-leftovers.ts';
import { retentionProcessor } from './retention-worker.ts';
import { checklistProcessor } from './checklist-worker.ts';
import type { ChecklistJob } from '../jobs/checklist-data.ts';
import { createChecklistStore } from '../checklists/state.ts';
import { retentionRunsFromQueue } from '../checklists/retention-runs.ts';
import { startPlanKeeper, type PlanKeeper } from './plan-keeper.ts';
import { startBaseBackupWorker, takeFirstBaseBackups } from './base-backup-jobs.ts';
import { repeatedErrors } from '../repeated-errors.ts';

export interface Workers {
  /** All workers are running (for /healthz). */
  running(): boolean;
  /** Aborts the jobs this process is running (their processors get the abort signal), e.g. the demo's Ctrl-C. */
  cancelRunning(reason: string): void;
  close(): Promise<void>;
}

export interface WorkerOptions {
  backupConcurrency?: number;
  restoreConcurrency?: number;
  /**
   * Upsert the periodic jobs (health checks, the config's schedules) and take missing first backups at start; tests
   * turn this off and run the processors themselves.
   */
  schedules?: boolean;
  progressIntervalMs?: number;
  /** How long a backup waits before trying again when another backup of its target runs (default 30 s). */
  backupLockRetryMs?: number;
  /** BullMQ's lock on a running job (default 10 s, stall-settings.ts says why); tests shorten it. */
  lockDurationMs?: number;
  /** How often the stalled-job check runs (default 3 s, never more than lockDurationMs). */
  stalledIntervalMs?: number;
  /** How often a job whose worker died is put back in the queue before it is failed and reported (default 1). */
  maxStalledCount?: number;
  /** How often Redis is checked against the plan (schedulers, queue limits), besides every reconnect (default 30 s). */
  planCheckMs?: number;
}

/** Starts one BullMQ worker per job kind on the shared Redis; more hosts running `worker` scale out. */
export async function startWorkers(deps: Deps, options: WorkerOptions = {}): Promise<Workers> {
  const { config, log } = deps;
  const prefix = config.queuePrefix;
  // How long a dead worker's job waits before the stalled-job check finds it, and how often it may be retried then.
  const stall = stallOptions(options);
  const { backup, restoreTest, restore } = startJobWorkers(deps, options, stall);
  const baseBackup = startBaseBackupWorker(deps, stall, options);
  // What would otherwise wait for a scheduled job to fail (a wrong password, an identity file that opens nothing).
  void startupChecks({ config, notifier: deps.notifier, redis: deps.workerRedis, log }).catch((err: unknown) => log.warn({ err }, 'start-up checks failed'));
  const healthDeps = healthDepsOf(deps);
  // One evaluator for the health job and the after-job checks: checks of one target never overlap in this process.
  const evaluate = createTargetEvaluator(healthDeps);
  const health = new Worker(QUEUE.health, healthProcessor({ ...healthDeps, evaluate }), { connection: deps.workerRedis, prefix, concurrency: 1 });
  // A page resolves seconds after the backup (restore test, restore) that fixed it, not at the next health run.
  reevaluateAfterJobs([backup, restoreTest, restore, baseBackup], evaluate, healthDeps.log);
  const pager = new Worker<PagerJobData>(
    QUEUE.pagerduty,
    pagerDutyProcessor({ redis: deps.workerRedis, prefix, client: deps.pagerDuty, notifier: deps.notifier, log: log.child({ worker: 'pagerduty' }) }),
    { connection: deps.workerRedis, prefix, concurrency: 1, settings: { backoffStrategy: (attemptsMade: number) => cappedBackoff(attemptsMade) } },
  );
  // One retention run at a time across every worker host (global concurrency below): two runs would race on deletes.
  const retention = new Worker<RetentionJobData>(
    QUEUE.retention,
    retentionProcessor({
      ...{ storage: deps.storage, copies: deps.copies, queues: deps.queues, notifier: deps.notifier, audit: deps.audit, config: deps.config },
      log: log.child({ worker: 'retention' }),
      // The checksum scrub runs after each retention run (storage/scrub.ts).
      scrub: redisScrubState(deps.workerRedis, prefix),
      pitrScrub: redisScrubState(deps.workerRedis, `${prefix}:pitr`),
      cliReaders: { redis: deps.workerRedis, prefix },
      copyScrub: { state: (copy) => copyScrubState(deps.workerRedis, prefix, copy), claim: repairClaim(deps.workerRedis, prefix, repairOwner) },
    }),
    { connection: deps.workerRedis, prefix, concurrency: 1 },
  );
  // Checklists: verified, posted to the channel, their state kept in Redis for the ticks (checklists/state.ts).
  const checklist = new Worker<ChecklistJob>(
    QUEUE.checklist,
    checklistProcessor({
      config,
      storage: deps.storage,
      runs: deps.runs,
      retention: retentionRunsFromQueue(deps.queues.retention, { redis: deps.workerRedis, prefix }),
      notifier: deps.notifier,
      store: createChecklistStore(deps.workerRedis, prefix),
      log: log.child({ worker: 'checklist' }),
    }),
    { connection: deps.workerRedis, prefix, concurrency: 1 },
  );
  const all = [backup, restoreTest, restore, health, pager, retention, checklist, baseBackup];
  logAndAuditJobs(all, deps);
  await Promise.all(all.map((w) => w.waitUntilReady()));
  const keeper = await keepThePlan(deps, options);
  await dropLeftovers(deps);
  // Backups a killed worker left half written, whose job is no longer running anywhere (backup-attempts.ts).
  await removeAbandonedBackups(deps.storage, deps.queues.backup, log.child({ worker: 'backup' }));
  // A new install is backed up now, not at the first scheduled run (FIRST_BACKUP_AT_START, workers/first-backups.ts).
  if (options.schedules !== false && config.firstBackupAtStart) {
    await takeFirstBackups({ config, storage: deps.storage, queue: deps.queues.backup, log: log.child({ component: 'first-backup' }) });
    await takeFirstBaseBackups(deps);
  }
  // PITR targets: WAL streamed (wal-archives.ts; an RPO verdict or a new timeline judged at once), markers (pitr-markers.ts).
  const recheck = (target: string) => void evaluate(target).catch((err: unknown) => log.warn({ err, target }, 'health check after WAL news failed'));
  const wal = await startWalArchives({ config, redis: deps.redis, log, recheck, storage: deps.storage });
  const markers = await startPitrUpkeep({ config, log, queue: deps.queues.restoreTest });
  return {
    running: () => all.every((w) => w.isRunning()),
    cancelRunning: (reason) => {
      for (const w of all) w.cancelAllJobs(reason);
    },
    async close() {
      keeper?.stop();
      await Promise.all([...all.map((w) => w.close()), wal.stop(), markers.stop()]);
    },
  };
}

/** The backup, restore-test and restore workers; a job whose worker died (twice) is reported like a failure. */
function startJobWorkers(deps: Deps, options: WorkerOptions, stall: ReturnType<typeof stallOptions>) {
  const { config, log } = deps;
  const prefix = config.queuePrefix;
  const backupDeps = {
    config,
    storage: deps.storage,
    notifier: deps.notifier,
    escalation: deps.escalation,
    runs: deps.runs,
    copies: deps.copies,
    preMigration: { restoreTest: deps.queues.restoreTest, checklist: deps.queues.checklist },
    lock: { redis: deps.workerRedis, prefix, ...(options.backupLockRetryMs !== undefined ? { retryMs: options.backupLockRetryMs } : {}) },
    log: log.child({ worker: 'backup' }),
    ...(options.progressIntervalMs !== undefined ? { progressIntervalMs: options.progressIntervalMs } : {}),
  };
  const backup = new Worker<BackupJobData>(
    QUEUE.backup,
    backupProcessor(backupDeps),
    // A dump holds a lock renewed while the event loop runs; hours-long children are fine.
    { connection: deps.workerRedis, prefix, concurrency: options.backupConcurrency ?? config.backupConcurrency, name: workerName(), ...stall },
  );
  const { storage, notifier, escalation } = deps;
  const restoreTestDeps = {
    ...{ config, storage, notifier, escalation, checklist: deps.queues.checklist, pitrQueue: deps.queues.restoreTest, redis: deps.workerRedis },
    log: log.child({ worker: 'restore-test' }),
  };
  const restoreTest = new Worker<RestoreTestJobData>(QUEUE.restoreTest, restoreTestProcessor(restoreTestDeps), {
    connection: deps.workerRedis,
    prefix,
    concurrency: options.restoreConcurrency ?? 2,
    ...stall,
  });
  // Jobs whose worker died (twice) are reported like failures: the processor never got to its catch.
  watchLostJobs(backup, lostBackupHandler(backupDeps), log);
  watchLostJobs(restoreTest, lostRestoreTestHandler(restoreTestDeps), log);
  const restoreDeps = {
    config,
    storage: deps.storage,
    notifier: deps.notifier,
    escalation: deps.escalation,
    log: log.child({ worker: 'restore' }),
    marks: { redis: deps.workerRedis, prefix },
  };
  const restore = new Worker<RestoreJobData>(QUEUE.restore, restoreProcessor(restoreDeps), { connection: deps.workerRedis, prefix, concurrency: 1, ...stall });
  watchLostJobs(restore, lostRestoreHandler(restoreDeps), log);
  return { backup, restoreTest, restore };
}

/** Every worker's errors and failed jobs logged; backup, restore-test and restore jobs' ends in the audit trail. */
function logAndAuditJobs(all: Worker[], deps: Deps): void {
  const { log } = deps;
  const audited = new Set<string>([QUEUE.backup, QUEUE.restoreTest, QUEUE.restore, QUEUE.baseBackup]);
  const auditJob = (queue: string, jobId: string | undefined, result: string) => {
    if (!audited.has(queue)) return;
    void deps.audit
      .append({ kind: 'job', userId: null, userName: null, what: queue, args: '', decision: 'n/a', role: null, jobId: jobId ?? null, result })
      .catch(() => undefined);
  };
  const workerError = repeatedErrors(log, 'worker error'); // a Redis outage: every worker, each reconnect attempt
  for (const w of all) {
    w.on('error', (err) => workerError(err, { worker: w.name }));
    w.on('failed', (job, err) => {
      log.warn({ jobId: job?.id, worker: w.name, reason: err.message }, 'job failed');
      auditJob(w.name, job?.id, `failed: ${err.message.slice(0, 300)}`);
    });
    w.on('completed', (job, value: unknown) => auditJob(w.name, job.id, `completed: ${JSON.stringify(value ?? null).slice(0, 300)}`));
  }
}

/**
 * The plan in Redis: the health check's and the config's schedulers (removed schedules leave Redis), and one
 * PagerDuty delivery (events of one dedup key leave in order) and one retention run at a time across every host.
 * Idempotent: any number of workers starting at once leave exactly one scheduler. Kept while we run: Redis can
 * lose it (restarted empty, FLUSHALL, failover) and BullMQ would not put it back (plan-keeper.ts).
 */
async function keepThePlan(deps: Deps, options: WorkerOptions): Promise<PlanKeeper | null> {
  const { config, log } = deps;
  if (options.schedules !== false) {
    return startPlanKeeper({
      config,
      queues: deps.queues,
      log: log.child({ component: 'schedules' }),
      redis: deps.workerRedis,
      watch: [deps.workerRedis, deps.redis],
      escalation: deps.escalation,
      pagerDuty: deps.pagerDuty,
      notifier: deps.notifier,
      ...(options.planCheckMs !== undefined ? { intervalMs: options.planCheckMs } : {}),
    });
  }
  await deps.queues.pagerduty.setGlobalConcurrency(1);
  await deps.queues.retention.setGlobalConcurrency(1);
  return null;
}
