import { UnrecoverableError, type Job } from 'bullmq';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { BotError, isBotError, toUserMessage } from '../errors.ts';
import { RestoreTestJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import type { Escalation } from '../notifications/escalation.ts';
import {
  backupMarkedDamaged,
  restoreTestError,
  restoreTestFinished,
  restoreTestProblems,
  restoreTestRunning,
  type RestoreJobInfo,
} from '../notifications/restore-messages.ts';
import type { MessageRef, Notifier } from '../notifications/types.ts';
import { onlyRolesFailed, runRestoreTest, scratchName } from '../postgres/restore/index.ts';
import { notItsDay } from './restore-test-settings.ts';
import {
  BackupIdSchema,
  findBackup,
  latestGoodBackup,
  type Manifest,
  newestGoodWithin,
  newRecordId,
  notRunTestRecord,
  type PassedOver,
  passedOverSentence,
  type RestoreRecord,
  type Storage,
} from '../storage/index.ts';
import { confirmDamage } from '../storage/scrub.ts';
import { quietNotifier } from './quiet-notifier.ts';
import { openAnchor } from './anchor.ts';
import type { Queue } from 'bullmq';
import type { ChecklistJob } from '../jobs/checklist-data.ts';
import { handOffRestoreTest, restoreNotRun, restoreResultOf } from './pre-migration.ts';
import { LOST_JOB_REASON } from './lost-jobs.ts';
import { checkedAtTheDoor } from './job-door.ts';
import { rolesForRestoreTest } from './restore-test-roles.ts';
import { restoreTestSettings, scratchServerUrl } from './restore-test-settings.ts';
import type { RedisConnection } from '../redis-client.ts';
import { lostPitrTest, queueScheduledPitrTest, runPitrTestJob } from './pitr-test-worker.ts';

export interface RestoreTestWorkerDeps {
  config: Config;
  storage: Storage;
  notifier: Notifier;
  escalation: Escalation;
  log: Logger;
  now?: () => Date;
  /** Where a pre-migration backup's test hands its result on: the pre-migration checklist. */
  checklist?: Queue<ChecklistJob>;
  /** The restore-test queue itself: the first-Saturday test queues a PITR test of a target with point-in-time recovery. */
  pitrQueue?: Queue<RestoreTestJobData>;
  /** Where a PITR test's outcome is kept for health (pitr-test-worker.ts). */
  redis?: RedisConnection;
}

/** The scratch database of a restore-test job: derived from the job id, so a starting worker knows whose it is. */
export const scratchDatabaseFor = (jobId: string, scope: string) => scratchName(`job:${jobId}`, scope);

/**
 * One restore test: a channel message updated through checksum → restore → verify → verdict, a record kept
 * beside the backups, a critical page when a backup does not restore, a resolve when the next one does.
 */
export function restoreTestProcessor(deps: RestoreTestWorkerDeps) {
  const now = deps.now ?? (() => new Date());
  return checkedAtTheDoor(
    RestoreTestJobData,
    'restore-test',
    deps,
    async (job: Job<RestoreTestJobData>, _token?: string, signal?: AbortSignal): Promise<{ passed: boolean } | { skipped: string }> => {
      const jobId = job.id ?? 'unknown';
      if (job.data.pitr) return runPitrTestJob(deps, job, signal);
      const skipped = notItsDay(job, deps.config.timezone);
      if (skipped) {
        deps.log.info({ jobId, target: job.data.target, rule: job.data.schedule?.rule }, `scheduled restore test skipped: ${skipped}`);
        return { skipped };
      }
      if (job.data.schedule) await queueScheduledPitrTest(deps, job.data.target, deps.log.child({ jobId }));
      // A scheduled test names no backup: the newest one is tested, chosen now and kept in the job for a re-run.
      const newest = job.data.backupId === undefined ? await newestBackup(deps.storage, job.data.target) : null;
      const data = newest?.backupId ? { ...job.data, backupId: newest.backupId, passedOver: newest.passedOver } : job.data;
      const notNewest = passedOverSentence(data.passedOver ?? [], `/backup health ${data.target}`);
      const log = deps.log.child({ jobId, target: data.target, backupId: data.backupId, attempt: job.attemptsMade + 1 });
      const req: RestoreJobInfo = { target: data.target, backupId: data.backupId ?? 'latest', jobId, requestedBy: data.requestedBy, purpose: purposeOf(data) };
      const say = quietNotifier(deps.notifier, log);
      const anchor = await openAnchor(job, say.post, restoreTestRunning(req, 'starting'), data);
      const startedAt = now();
      try {
        if (newest?.error) throw newest.error;
        const target = findTarget(deps.config, data.target);
        const manifest = await findBackup(deps.storage, req.backupId);
        const serverUrl = scratchServerUrl(deps.config, target.url);
        // On another server than the target's, the backup's roles first: those its policies name must exist there.
        const roles = await rolesForRestoreTest({ ...deps, manifest, serverUrl, targetUrl: target.url, log });
        const outcome = await runRestoreTest({
          manifest,
          storage: deps.storage,
          serverUrl,
          scratchKey: `job:${jobId}`,
          ...restoreTestSettings(deps.config),
          verify: target.verify,
          missingRole: roles.missingRole,
          ...(signal ? { signal } : {}),
          log,
          onProgress: (p) => {
            job.updateProgress(p).catch((err: unknown) => log.debug({ err }, 'could not record progress in Redis'));
            if (anchor) void say.update(anchor, restoreTestRunning(req, `${p.phase.replace(/-/g, ' ')}${p.detail ? ` — ${p.detail}` : ''}`));
          },
          now,
        });
        const record: RestoreRecord = {
          ...outcome,
          formatVersion: 1,
          kind: 'restore-test',
          id: newRecordId(startedAt),
          requestedBy: data.requestedBy,
          jobId,
          selection: null,
          correctiveActions: null,
          ...(roles.notes.length || notNewest ? { notes: [...(notNewest ? [notNewest] : []), ...roles.notes] } : {}),
        };
        await reportTestFinished(deps, data, req, anchor, record, { log, manifest, signal });
        if (!record.passed) throw new UnrecoverableError(`restore test failed: ${record.problems[0] ?? ''}`);
        return { passed: true };
      } catch (err) {
        if (err instanceof UnrecoverableError) throw err;
        // The test could not run at all (server unreachable, no CREATEDB, backup gone): as bad as a failed test.
        const reason = toUserMessage(err);
        log.error({ err, code: isBotError(err) ? err.code : 'internal' }, 'restore test could not run');
        await reportNotRun(deps, data, req, anchor, reason, log);
        throw new UnrecoverableError(reason);
      }
    },
  );
}

/**
 * A test that ran, passed or not: its record beside the backups, a resolve (passed) or a critical page (failed), the
 * channel message with the problems in its thread, and a pre-migration test's checklist.
 */
async function reportTestFinished(
  deps: RestoreTestWorkerDeps,
  data: RestoreTestJobData,
  req: RestoreJobInfo,
  anchor: MessageRef | undefined,
  record: RestoreRecord,
  { log, manifest, signal }: { log: Logger; manifest: Manifest; signal: AbortSignal | undefined },
): Promise<void> {
  const { jobId } = req;
  const say = quietNotifier(deps.notifier, log);
  await deps.storage.writeRecord(record).catch((err: unknown) => log.error({ err }, 'could not write the restore-test record'));
  log.info({ passed: record.passed, restoreMs: record.restoreMs, problems: record.problems.length }, 'restore test finished');
  // Not of the newest backup (it is damaged): no resolve of a page its test raised; a test of a newer one does that.
  const escalation = record.passed
    ? data.passedOver?.length
      ? 'an open restore-test page stays open: this test was not of the newest backup'
      : await deps.escalation
          .passed(data.target, 'restore-test', { summary: `Restore test of ${req.backupId} passed again`, details: { jobId } })
          .catch(() => null)
    : await deps.escalation
        .failed(data.target, 'restore-test', {
          summary: `Restore test of ${data.target} FAILED (${req.backupId}): ${record.problems[0] ?? 'see Slack'}`,
          severity: 'critical',
          details: { jobId, backupId: req.backupId, problems: record.problems.slice(0, 20) },
        })
        .catch((err: unknown) => {
          log.error({ err }, 'could not queue the PagerDuty trigger');
          return 'PagerDuty could NOT be paged (Redis error, see logs)';
        });
  const ref = await say.finish(anchor, restoreTestFinished(req, record, escalation));
  if (record.problems.length > 0) await say.reply(ref, restoreTestProblems(record.problems));
  // A sha256 that does not match is damage, once read again: marked, so nothing offers this backup any more.
  const marked = await confirmDamage(deps.storage, manifest, { by: 'a restore test', checksums: record.checked.checksums }, { log, signal });
  const rolesOnly = onlyRolesFailed(manifest, record.checked.checksums);
  if (marked) await say.reply(ref, backupMarkedDamaged(manifest, marked, await newestGoodWithin(deps.storage, manifest), rolesOnly));
  await handOffRestoreTest(deps.checklist, data, restoreResultOf(record, jobId), log);
}

/** A test that could not run: a critical page, the channel message, and a pre-migration checklist that says so. */
async function reportNotRun(
  deps: RestoreTestWorkerDeps,
  data: RestoreTestJobData,
  req: RestoreJobInfo,
  anchor: MessageRef | undefined,
  reason: string,
  log: Logger,
): Promise<void> {
  if (BackupIdSchema.safeParse(req.backupId).success) {
    const record = notRunTestRecord({ ...data, backupId: req.backupId, at: new Date(), jobId: req.jobId, reason });
    await deps.storage.writeRecord(record).catch((err: unknown) => log.error({ err }, 'could not write the restore-test record'));
  }
  const say = quietNotifier(deps.notifier, log);
  const escalation = await deps.escalation
    .failed(data.target, 'restore-test', {
      summary: `Restore test of ${data.target} could not run: ${reason}`,
      severity: 'critical',
      details: { jobId: req.jobId, backupId: req.backupId },
    })
    .catch(() => 'PagerDuty could NOT be paged (Redis error, see logs)');
  await say.finish(anchor, restoreTestError(req, reason, escalation));
  await handOffRestoreTest(deps.checklist, data, restoreNotRun(reason, req.jobId), log);
}

/**
 * A restore-test job BullMQ gave up on without our processor (its worker died mid-test, and so did the retry):
 * reported and paged as a test that could not run, and a pre-migration test still hands its checklist on. The
 * scratch database it left is dropped when a worker next starts (workers/index.ts).
 */
export function lostRestoreTestHandler(deps: RestoreTestWorkerDeps) {
  return async (job: Job<RestoreTestJobData>): Promise<void> => {
    const data = job.data;
    if (data.pitr) return lostPitrTest(deps, job, LOST_JOB_REASON);
    const jobId = job.id ?? 'unknown';
    const log = deps.log.child({ jobId, target: data.target, backupId: data.backupId });
    const req: RestoreJobInfo = { target: data.target, backupId: data.backupId ?? 'latest', jobId, requestedBy: data.requestedBy, purpose: purposeOf(data) };
    await reportNotRun(deps, data, req, data.anchor, LOST_JOB_REASON, log);
  };
}

const purposeOf = (data: RestoreTestJobData): string | undefined =>
  data.preMigration
    ? `pre-migration ${data.preMigration.label}`
    : data.schedule
      ? `scheduled (${data.schedule.rule === 'first-saturday' ? 'monthly' : 'quarterly'})`
      : undefined;

/** The target's newest finished backup, or the error a scheduled test reports (and pages) when there is none. */
async function newestBackup(storage: Storage, target: string): Promise<{ backupId?: string; passedOver?: PassedOver[]; error?: unknown }> {
  try {
    const { latest: m, passedOver } = await latestGoodBackup(storage, target);
    if (m) return { backupId: m.backupId, passedOver };
    return {
      error: new BotError('backup_not_found', `There is no finished backup of ${target} to test: the scheduled restore test found nothing to restore.`),
    };
  } catch (err) {
    return { error: err };
  }
}
