import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { BotError, isBotError, toUserMessage } from '../errors.ts';
import { BackupJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { backupDetails, backupFailed, backupStarted, backupSucceeded, failureDetails, type BackupRequestInfo } from '../notifications/backup-messages.ts';
import type { Escalation } from '../notifications/escalation.ts';
import type { MessageRef, Notifier } from '../notifications/types.ts';
import { describeDumpProgress, dumpEstimate, runBackup } from '../postgres/backup/index.ts';
import { escapeMrkdwn } from '../format.ts';
import { makeBackupId, type Manifest } from '../storage/index.ts';
import { retentionFor } from '../storage/index.ts';
import { quietNotifier, throttledEdits } from './quiet-notifier.ts';
import { openAnchor } from './anchor.ts';
import { copyOffsite } from './offsite-copy.ts';
import { configuredDrift, type RunLog } from '../health/index.ts';
import type { Storage } from '../storage/index.ts';
import { handOffPreMigration, type PreMigrationQueues } from './pre-migration.ts';
import { LOST_JOB_REASON } from './lost-jobs.ts';
import { EndedByReplacement, endedByReplacement, restartedText } from './ended-by-replacement.ts';
import { storageMarkProblem } from '../storage/storage-mark.ts';
import { checkedAtTheDoor } from './job-door.ts';
import { throughBackupGates, type BackupGates } from './backup-gates.ts';
import { discardEarlierAttempts, startBackupAttempt } from './backup-attempts.ts';
import { driftSincePrevious } from '../drift/index.ts';
import { driftSinceMessage } from '../notifications/drift-messages.ts';

export interface BackupWorkerDeps {
  config: Config;
  storage: Storage;
  notifier: Notifier;
  escalation: Escalation;
  runs: RunLog;
  /** Off-site copy targets: each finished backup is copied to every one of them. */
  copies?: Storage[];
  log: Logger;
  now?: () => Date;
  /** One backup per target, and a limit per database server, across every worker (backup-gates.ts); without it (unit tests) neither. */
  lock?: BackupGates;
  /** Minimum time between progress edits of the channel message (Slack allows about one write per second per channel). */
  progressIntervalMs?: number;
  /** How often a dump that stands still is checked for a lock wait (runBackup's lockWatchMs; default 5 s). */
  lockWatchMs?: number;
  /** Where a pre-migration backup hands on: its restore test, or (failed) its checklist. */
  preMigration?: PreMigrationQueues;
}

/**
 * Runs one backup job: a channel message when it starts, updated in place with progress and the verdict,
 * details in its thread; a page on failure, a resolve on the next success. Slack trouble never fails a backup.
 */
export function backupProcessor(deps: BackupWorkerDeps) {
  const run = runBackupJob(deps);
  return checkedAtTheDoor(
    BackupJobData,
    'backup',
    deps,
    async (job: Job<BackupJobData>, token?: string, signal?: AbortSignal): Promise<{ backupId: string }> => {
      if (!deps.lock) return run(job, signal);
      return throughBackupGates(deps.lock, { config: deps.config, job, token, log: deps.log }, () => run(job, signal)).catch(async (err: unknown) => {
        if (!(err instanceof EndedByReplacement)) throw err;
        // Its lock released: runs again once the swap is done (the gates hold it off until then), same job, same message.
        await job.moveToDelayed(Date.now() + 1000, token);
        throw new DelayedError();
      });
    },
  );
}

const requestInfo = (job: Job<BackupJobData>): BackupRequestInfo => {
  const d = job.data;
  return { target: d.target, jobId: job.id ?? 'unknown', requestedBy: d.requestedBy, kind: d.kind, label: d.label, schedule: d.schedule };
};

/**
 * A failed backup, said everywhere it must be: the run log (health, checklists), a PagerDuty trigger, the channel
 * message (updated in place when there is one), and a pre-migration backup's checklist ("do not migrate").
 */
async function reportBackupFailure(
  deps: BackupWorkerDeps,
  job: Job<BackupJobData>,
  o: { anchor: MessageRef | undefined; reason: string; backupId: string | null; detail?: string | undefined; log: Logger },
): Promise<void> {
  const data = job.data;
  const jobId = job.id ?? 'unknown';
  const now = deps.now ?? (() => new Date());
  const say = quietNotifier(deps.notifier, o.log);
  await deps.runs
    .record(data.target, { ok: false, at: now(), reason: o.reason, jobId })
    .catch((e: unknown) => o.log.warn({ err: e }, 'could not record the run'));
  const escalation = await deps.escalation
    .failed(data.target, 'backup', {
      summary: `Backup of ${data.target} failed: ${o.reason}`,
      severity: 'error',
      details: {
        jobId,
        target: data.target,
        ...(o.backupId ? { backupId: o.backupId } : {}),
        reason: o.reason,
        requestedBy: data.requestedBy.userName ?? data.requestedBy.source,
      },
    })
    .catch((e: unknown) => {
      o.log.error({ err: e }, 'could not queue the PagerDuty trigger');
      return 'PagerDuty could NOT be paged (Redis error, see logs)';
    });
  const ref = await say.finish(o.anchor, backupFailed(requestInfo(job), o.reason, escalation));
  if (o.detail) await say.reply(ref, failureDetails(o.detail));
  await handOffPreMigration(deps.preMigration, data, jobId, { reason: o.reason }, o.log);
}

/**
 * A backup job BullMQ gave up on without our processor: its worker died mid-dump, and so did the retry
 * (lost-jobs.ts). Reported and paged like any failed backup, so the channel message does not say "running" forever
 * and a pre-migration checklist still comes. What the dead attempts wrote (recorded in the job's data) is removed
 * here (backup-attempts.ts).
 */
export function lostBackupHandler(deps: BackupWorkerDeps) {
  return async (job: Job<BackupJobData>): Promise<void> => {
    const log = deps.log.child({ jobId: job.id, target: job.data.target });
    await reportBackupFailure(deps, job, { anchor: job.data.anchor, reason: LOST_JOB_REASON, backupId: null, log });
    // After the report, so a slow storage never delays the page: what the dead attempts left is removed.
    await discardEarlierAttempts(deps.storage, job, log);
  };
}

function runBackupJob(deps: BackupWorkerDeps) {
  const now = deps.now ?? (() => new Date());
  return async (job: Job<BackupJobData>, signal?: AbortSignal): Promise<{ backupId: string }> => {
    const data = job.data;
    const jobId = job.id ?? 'unknown';
    const log = deps.log.child({ jobId, target: data.target, attempt: job.attemptsMade + 1 });
    const req = requestInfo(job);
    const say = quietNotifier(deps.notifier, log);

    const anchor = await openAnchor(job, say.post, backupStarted(req, 'starting'));
    const progress = throttledEdits(say, anchor, deps.progressIntervalMs ?? 5000, (text) => backupStarted(req, text));
    let lastWaiting: string | undefined;

    const startedAt = now();
    const backupId = makeBackupId(data.target, startedAt);
    // A scheduled backup carries its schedule's class and keepDays; a pre-migration one may carry its target's keepDays.
    const retention = retentionFor(data.kind, startedAt, data.schedule?.retentionClass, data.schedule?.keepDays ?? data.keepDays);
    try {
      const target = findTarget(deps.config, data.target);
      // Never into a BACKUP_DIR that is not the bot's storage (a disk not mounted: storage-mark.ts).
      const notOurs = deps.lock ? await storageMarkProblem(deps.storage, deps.lock.redis, deps.lock.prefix) : null;
      if (notOurs) throw new BotError('storage_failed', notOurs);
      // An earlier attempt whose worker died left its directory: removed first; this one's id is recorded before its dump.
      const attempt = await startBackupAttempt(deps.storage, job, log);
      log.info({ backupId }, 'backup started');
      const estimate = await dumpEstimate(deps.storage, target.name);
      const manifest: Manifest = await runBackup({
        target,
        storage: deps.storage,
        backupId,
        kind: data.kind,
        retentionClass: retention.retentionClass,
        retainUntil: retention.retainUntil,
        requestedBy: data.requestedBy,
        jobId,
        ...(attempt.owner ? { owner: attempt.owner } : {}),
        onReserved: attempt.record,
        label: data.label,
        compressionLevel: deps.config.compressionLevel,
        // Public keys only: the worker can encrypt but never decrypt. No keys: production refuses unless opted out.
        encryption: deps.config.encryption,
        ...(deps.config.pgBinDir ? { pgBinDir: deps.config.pgBinDir } : {}),
        ...(signal ? { signal } : {}),
        log,
        onProgress: (p) => {
          // Redis may have lost the job (restarted empty): the backup goes on, so must the process (no unhandled rejection).
          job.updateProgress(p).catch((err: unknown) => log.debug({ err }, 'could not record progress in Redis'));
          // From the dump's first report on, with its total (the last backup's size, or a first one's tables on disk).
          const dumping = p.phase === 'dumping' && p.rawBytes !== undefined;
          // Waiting for a lock, the bytes stand still: what is waited for and who holds it, never a time left.
          const text = p.waiting
            ? `${p.phase}, ${p.waiting}`
            : dumping
              ? `dumping, ${describeDumpProgress(p.rawBytes ?? 0, now().getTime() - startedAt.getTime(), estimate, p.tablesBytes)}`
              : p.phase;
          // A new wait (or a new look at one, every 5 s) is said at once; the same one waits for the usual interval.
          const newWait = p.waiting !== undefined && p.waiting !== lastWaiting;
          lastWaiting = p.waiting;
          progress(escapeMrkdwn(text), p.phase !== 'dumping' || newWait);
        },
        now,
        ...(deps.lockWatchMs !== undefined ? { lockWatchMs: deps.lockWatchMs } : {}),
        // retainUntil = startedAt + keepDays, exactly, in the manifest.
        startedAt,
      });
      await reportBackupSuccess(deps, job, { anchor, req, manifest, log, ...(signal ? { signal } : {}) });
      return { backupId: manifest.backupId };
    } catch (err) {
      const reason = toUserMessage(err);
      log.error({ err, code: isBotError(err) ? err.code : 'internal' }, 'backup failed');
      const endedBy = await endedByReplacement(deps, jobId, err, startedAt);
      if (endedBy) {
        progress(escapeMrkdwn(restartedText(endedBy)), true);
        throw new EndedByReplacement();
      }
      const detail = isBotError(err) && err.message !== err.userMessage ? err.message : undefined;
      await reportBackupFailure(deps, job, { anchor, reason, backupId, detail, log });
      // Not retried: a failed backup is reported and paged now; the next run (manual or scheduled) is the retry.
      throw new UnrecoverableError(reason);
    }
  };
}

/**
 * A finished backup, said everywhere it must be: the run log, off-site copies, the resolve of an open page, the
 * channel message with its details in the thread, and a pre-migration backup's restore test.
 */
async function reportBackupSuccess(
  deps: BackupWorkerDeps,
  job: Job<BackupJobData>,
  o: { anchor: MessageRef | undefined; req: BackupRequestInfo; manifest: Manifest; log: Logger; signal?: AbortSignal },
): Promise<void> {
  const { manifest, log } = o;
  const data = job.data;
  const jobId = job.id ?? 'unknown';
  const now = deps.now ?? (() => new Date());
  const say = quietNotifier(deps.notifier, log);
  log.info({ backupId: manifest.backupId, bytes: manifest.artifacts.map((a) => a.bytes), ms: manifest.durationMs }, 'backup succeeded');
  await deps.runs.record(data.target, { ok: true, at: now(), reason: null, jobId }).catch((err: unknown) => log.warn({ err }, 'could not record the run'));
  const copyNote = await copyOffsite(deps, data.target, manifest, log, o.signal);
  const resolved = await deps.escalation
    .passed(data.target, 'backup', {
      summary: `Backup of ${data.target} succeeded again: ${manifest.backupId}`,
      details: { jobId, backupId: manifest.backupId },
    })
    .catch((err: unknown) => {
      log.error({ err }, 'could not queue the PagerDuty resolve');
      return 'PagerDuty resolve could not be queued (see logs)';
    });
  const ref = await say.finish(o.anchor, backupSucceeded(o.req, manifest, deps.config.timezone));
  await say.reply(ref, backupDetails(manifest));
  const drift = await driftSincePrevious({ storage: deps.storage, thresholds: configuredDrift(deps.config.health.thresholds), log }, manifest);
  if (drift) await say.reply(ref, driftSinceMessage(drift));
  if (resolved) await say.reply(ref, { text: `:white_check_mark: ${resolved}` });
  if (copyNote) await say.reply(ref, { text: copyNote });
  const handedOn = await handOffPreMigration(deps.preMigration, data, jobId, { manifest }, log);
  if (handedOn) await say.reply(ref, { text: handedOn });
}
