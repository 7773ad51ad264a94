import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { BotError, isBotError, toUserMessage } from '../errors.ts';
import { BaseBackupJobData, baseBackupLockKey } from '../jobs/base-backup-data.ts';
import { recordBaseBackupRun } from '../jobs/base-backup-runs.ts';
import { tryRedisLock } from '../jobs/redis-lock.ts';
import type { Logger } from '../logger.ts';
import {
  type BaseBackupRequestInfo,
  baseBackupDetails,
  baseBackupFailed,
  baseBackupStarted,
  baseBackupSucceeded,
} from '../notifications/base-backup-messages.ts';
import { formatBytes } from '../format.ts';
import { failureDetails } from '../notifications/backup-messages.ts';
import type { Escalation } from '../notifications/escalation.ts';
import type { MessageRef, Notifier } from '../notifications/types.ts';
import { awaitBaseWal } from '../postgres/pitr/base-wal.ts';
import { takeBaseBackup } from '../postgres/pitr/take-base-backup.ts';
import { archiveWalList } from '../postgres/pitr/s3-archive.ts';
import { pitrArchiveRoot, pitrInS3 } from '../postgres/pitr/pitr-location.ts';
import { openAnchor } from './anchor.ts';
import { checkedAtTheDoor } from './job-door.ts';
import { LOST_JOB_REASON } from './lost-jobs.ts';
import { quietNotifier } from './quiet-notifier.ts';

/** The PagerDuty condition of a failed base backup: dedup key `pg-backup-bot/<target>/base-backup`. */
export const BASE_BACKUP_CONDITION = 'base-backup';

export interface BaseBackupWorkerDeps {
  config: Config;
  notifier: Notifier;
  escalation: Escalation;
  /** The run log and the per-target lock (one base backup of a target at a time across every worker). */
  redis: RedisConnection;
  log: Logger;
  /** How long a job waits before trying again when another base backup of its target runs (default 30 s). */
  lockRetryMs?: number;
  /** How long the verdict waits for the archive to hold the base backup's WAL (default 2 min). */
  walWaitMs?: number;
  /** Minimum time between progress edits of the channel message (default 5 s). */
  progressIntervalMs?: number;
  now?: () => Date;
}

const requestInfo = (job: Job<BaseBackupJobData>): BaseBackupRequestInfo => ({
  target: job.data.target,
  jobId: job.id ?? 'unknown',
  requestedBy: job.data.requestedBy,
  label: job.data.label,
  scheduled: job.data.schedule !== undefined,
});

/**
 * One base-backup job: a channel message when it starts, updated in place with the verdict (size, duration, WAL
 * start and end, encrypted or not, the sha256 read back); a page on failure, its resolve on the next success.
 */
export function baseBackupProcessor(deps: BaseBackupWorkerDeps) {
  const prefix = deps.config.queuePrefix;
  return checkedAtTheDoor(
    BaseBackupJobData,
    BASE_BACKUP_CONDITION,
    deps,
    async (job: Job<BaseBackupJobData>, token?: string, signal?: AbortSignal): Promise<{ baseBackupId: string }> => {
      const key = baseBackupLockKey(prefix, job.data.target);
      const lock = await tryRedisLock(deps.redis, key, job.id ?? 'unknown');
      if (!lock) {
        // Another base backup of this target runs (the schedule's beside a manual one): wait for it, quietly.
        deps.log.info(
          { jobId: job.id, target: job.data.target, holder: await deps.redis.get(key) },
          'another base backup of this target is running; this one waits',
        );
        await job.moveToDelayed(Date.now() + (deps.lockRetryMs ?? 30_000), token);
        throw new DelayedError();
      }
      try {
        return await runJob(deps, job, signal);
      } finally {
        await lock.release();
      }
    },
  );
}

async function runJob(deps: BaseBackupWorkerDeps, job: Job<BaseBackupJobData>, signal?: AbortSignal): Promise<{ baseBackupId: string }> {
  const now = deps.now ?? (() => new Date());
  const log = deps.log.child({ jobId: job.id, target: job.data.target, attempt: job.attemptsMade + 1 });
  const say = quietNotifier(deps.notifier, log);
  const req = requestInfo(job);
  const anchor = await openAnchor(job, say.post, baseBackupStarted(req, 'pg_basebackup streaming the cluster'));
  try {
    let lastEdit = Date.now();
    const onProgress = (raw: number) => {
      if (!anchor || Date.now() - lastEdit < (deps.progressIntervalMs ?? 5000)) return;
      lastEdit = Date.now();
      void say.update(anchor, baseBackupStarted(req, `${formatBytes(raw)} of the cluster streamed`));
    };
    const b = await takeBaseBackup(deps.config, findTarget(deps.config, job.data.target), {
      signal,
      now,
      reserveWal: true,
      onProgress,
      warn: (m) => log.warn(m),
    });
    // Stored and read back is not yet recoverable: its WAL must be in the archive too (base-wal.ts).
    // Where the archive is: with S3 as the primary store, only WAL the bucket holds counts.
    const archived = archiveWalList(deps.config, req.target);
    const wal = await awaitBaseWal(archived, b, { timeoutMs: deps.walWaitMs ?? 120_000, signal }).finally(() => archived.close());
    if (wal.state === 'lost') {
      throw new BotError(
        'pg_dump_failed',
        `base backup ${b.id} was stored, but WAL segment ${wal.missing} that it needs is not in the archive and never will be (newer ones are): it cannot be recovered from. Take another base backup while the WAL stream is up.`,
      );
    }
    log.info({ baseBackupId: b.id, bytes: b.bytes, startLsn: b.startLsn, endLsn: b.endLsn, wal: wal.state }, 'base backup succeeded');
    await recordBaseBackupRun(deps.redis, deps.config.queuePrefix, req.target, { ok: true, at: now(), reason: null, jobId: req.jobId }).catch((err: unknown) =>
      log.warn({ err }, 'could not record the base-backup run'),
    );
    const resolved = await deps.escalation
      .passed(req.target, BASE_BACKUP_CONDITION, {
        summary: `Base backup of ${req.target} succeeded again: ${b.id}`,
        details: { jobId: req.jobId, baseBackupId: b.id },
      })
      .catch((err: unknown) => {
        log.error({ err }, 'could not queue the PagerDuty resolve');
        return 'PagerDuty resolve could not be queued (see logs)';
      });
    const ref = await say.finish(anchor, baseBackupSucceeded(req, b, wal, pitrInS3(deps.config)));
    // Where it is stored: the bucket when S3 is the primary store, else BACKUP_DIR.
    await say.reply(ref, baseBackupDetails(pitrArchiveRoot(deps.config), b));
    if (resolved) await say.reply(ref, { text: `:white_check_mark: ${resolved}` });
    return { baseBackupId: b.id };
  } catch (err) {
    const reason = toUserMessage(err);
    log.error({ err, code: isBotError(err) ? err.code : 'internal' }, 'base backup failed');
    await reportBaseBackupFailure(deps, job, { anchor, reason, detail: isBotError(err) && err.message !== err.userMessage ? err.message : undefined, log });
    // Not retried: the failure is reported and paged now; the next run (manual or scheduled) is the retry.
    throw new UnrecoverableError(reason);
  }
}

/** A failed base backup, said everywhere it must be: the run log (health), a PagerDuty trigger, the channel message. */
async function reportBaseBackupFailure(
  deps: BaseBackupWorkerDeps,
  job: Job<BaseBackupJobData>,
  o: { anchor: MessageRef | undefined; reason: string; detail?: string | undefined; log: Logger },
): Promise<void> {
  const req = requestInfo(job);
  const now = deps.now ?? (() => new Date());
  const say = quietNotifier(deps.notifier, o.log);
  await recordBaseBackupRun(deps.redis, deps.config.queuePrefix, req.target, { ok: false, at: now(), reason: o.reason, jobId: req.jobId }).catch(
    (err: unknown) => o.log.warn({ err }, 'could not record the base-backup run'),
  );
  const escalation = await deps.escalation
    .failed(req.target, BASE_BACKUP_CONDITION, {
      summary: `Base backup of ${req.target} failed: ${o.reason}`,
      severity: 'error',
      details: { jobId: req.jobId, target: req.target, reason: o.reason, requestedBy: req.requestedBy.userName ?? req.requestedBy.source },
    })
    .catch((err: unknown) => {
      o.log.error({ err }, 'could not queue the PagerDuty trigger');
      return 'PagerDuty could NOT be paged (Redis error, see logs)';
    });
  const ref = await say.finish(o.anchor, baseBackupFailed(req, o.reason, escalation));
  if (o.detail) await say.reply(ref, failureDetails(o.detail));
}

/** A base-backup job whose worker died mid-run (lost-jobs.ts): reported and paged like any failed base backup. */
export function lostBaseBackupHandler(deps: BaseBackupWorkerDeps) {
  return async (job: Job<BaseBackupJobData>): Promise<void> => {
    const log = deps.log.child({ jobId: job.id, target: job.data.target });
    await reportBaseBackupFailure(deps, job, { anchor: job.data.anchor, reason: LOST_JOB_REASON, log });
  };
}
