import { createHash } from 'node:crypto';
import { type Job, type Queue, UnrecoverableError } from 'bullmq';
import { findTarget } from '../config.ts';
import { loadIdentity } from '../crypto/age.ts';
import { BotError, isBotError, toUserMessage } from '../errors.ts';
import { enqueuePitrTest } from '../jobs/producers.ts';
import type { RestoreTestJobData } from '../jobs/queues.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Escalation } from '../notifications/escalation.ts';
import { type PitrTestInfo, pitrTestError, pitrTestFinished, pitrTestRunning } from '../notifications/pitr-test-messages.ts';
import { runPitrTest } from '../postgres/pitr/pitr-test.ts';
import { recordPitrTestRun } from '../jobs/base-backup-runs.ts';
import type { RedisConnection } from '../redis-client.ts';
import { s3PitrStore } from '../postgres/pitr/s3-pitr-store.ts';
import { pitrInS3 } from '../postgres/pitr/pitr-location.ts';
import { removeLeftoverScratch } from '../postgres/pitr/scratch-cluster.ts';
import { openAnchor } from './anchor.ts';
import { quietNotifier } from './quiet-notifier.ts';
import type { Notifier } from '../notifications/types.ts';

/** What a PITR test job needs: the restore-test worker's own dependencies (restore-test-worker.ts), and its queue for the schedule's tests. */
export interface PitrTestDeps {
  config: Config;
  notifier: Notifier;
  escalation: Escalation;
  log: Logger;
  pitrQueue?: Queue<RestoreTestJobData> | undefined;
  /** Where the last test's outcome is kept for health (`pitr-test-failing`); without it, health does not see it. */
  redis?: RedisConnection | undefined;
}

/** The outcome kept for `/backup health`, `check` and /metrics; a Redis error is logged, never the test's failure. */
async function rememberOutcome(deps: PitrTestDeps, req: PitrTestInfo, ok: boolean, reason: string | null, log: Logger): Promise<void> {
  if (!deps.redis) return;
  await recordPitrTestRun(deps.redis, deps.config.queuePrefix, req.target, { ok, at: new Date(), reason, jobId: req.jobId }).catch((err: unknown) =>
    log.warn({ err }, 'could not record the PITR restore test for health'),
  );
}

/** PagerDuty's dedup key of a failed PITR restore test: `pg-backup-bot/<target>/pitr-restore-test`, apart from logical restore tests. */
export const PITR_TEST_CONDITION = 'pitr-restore-test';

const hash = (v: string, n: number) => createHash('sha256').update(v).digest('hex').slice(0, n);
/** Whose scratch clusters these are: this bot's queues (another bot on the host, another prefix, is never touched). */
const scratchOwner = (queuePrefix: string) => `q${hash(queuePrefix, 6)}`;
/** The scratch cluster's label: the owner and the job id, so a starting worker knows whose a leftover one is. */
export const pitrScratchLabel = (queuePrefix: string, jobId: string) => `${scratchOwner(queuePrefix)}-${hash(jobId, 12)}`;

/** Scratch clusters of PITR tests whose worker was killed (their job no longer active): stopped and removed. */
export async function removeAbandonedPitrScratch(queue: Queue<RestoreTestJobData>, queuePrefix: string, log: Logger): Promise<void> {
  try {
    const keep = new Set((await queue.getJobs(['active'])).filter((j) => j.data.pitr).map((j) => pitrScratchLabel(queuePrefix, j.id ?? '')));
    const removed = await removeLeftoverScratch(scratchOwner(queuePrefix), keep);
    if (removed.length) log.warn({ removed }, 'removed scratch clusters left behind by an interrupted PITR restore test');
  } catch (err) {
    log.warn({ err }, 'could not look for leftover PITR scratch clusters');
  }
}

const infoOf = (job: Job<RestoreTestJobData>): PitrTestInfo => ({
  target: job.data.target,
  asked: job.data.pitr?.at ?? 'latest',
  jobId: job.id ?? 'unknown',
  requestedBy: job.data.requestedBy,
  purpose: job.data.requestedBy.source === 'schedule' ? 'scheduled (first Saturday)' : undefined,
});

/**
 * A PITR restore test job (`/restore-test pitr`, and the first-Saturday test of each PITR target): the channel
 * message through fetch → replay → checks → verdict, each check named and the RTO by phase; a failure, or a test
 * that could not run, pages `pg-backup-bot/<target>/pitr-restore-test` (critical); the next pass resolves it.
 */
export async function runPitrTestJob(deps: PitrTestDeps, job: Job<RestoreTestJobData>, signal?: AbortSignal): Promise<{ passed: boolean }> {
  const req = infoOf(job);
  const log = deps.log.child({ jobId: req.jobId, target: req.target, pitr: req.asked });
  const say = quietNotifier(deps.notifier, log);
  const anchor = await openAnchor(job, say.post, pitrTestRunning(req, 'starting'));
  try {
    const target = findTarget(deps.config, req.target);
    if (!target.pitr) throw new BotError('bad_request', `${target.name} has no pitr section in the config file: it has no WAL archive to test.`);
    const identityFile = deps.config.encryption.identityFile;
    // With S3 as the copy, the test recovers from the bucket: the path a new server takes after losing this disk.
    // With S3 as the primary store, the bucket is the archive: planned on it and recovered from it.
    const offsite = s3PitrStore(deps.config, target.name, { log });
    const outcome = await runPitrTest({
      offsite,
      primary: pitrInS3(deps.config),
      target: target.name,
      root: deps.config.backupDir,
      asked: req.asked,
      identity: identityFile ? await loadIdentity(identityFile, 'the PITR restore test needs it to decrypt the archive') : undefined,
      sourceUrl: target.url,
      markers: target.pitr.markers !== false,
      ...(target.pitr.markers ? { markerEveryMs: target.pitr.markers.everySeconds * 1000 } : {}),
      heapallindexed: target.verify === 'full',
      label: pitrScratchLabel(deps.config.queuePrefix, req.jobId),
      log,
      signal,
      onPhase: (p) => {
        if (anchor) void say.update(anchor, pitrTestRunning(req, p));
      },
    }).finally(() => offsite?.client.destroy());
    log.info({ passed: outcome.passed, rtoMs: outcome.rtoMs, checks: outcome.checks }, 'PITR restore test finished');
    const failed = outcome.checks.find((c) => c.ok === false) ?? outcome.checks.find((c) => c.ok === null);
    const escalation = outcome.passed
      ? await deps.escalation
          .passed(req.target, PITR_TEST_CONDITION, { summary: `PITR restore test of ${req.target} passed again`, details: { jobId: req.jobId } })
          .catch(() => null)
      : await deps.escalation
          .failed(req.target, PITR_TEST_CONDITION, {
            summary: `PITR restore test of ${req.target} FAILED: ${failed ? `${failed.name}: ${failed.detail}` : 'see Slack'}`.slice(0, 1000),
            severity: 'critical',
            details: { jobId: req.jobId, asked: req.asked, at: outcome.at, baseId: outcome.baseId, checks: outcome.checks },
          })
          .catch((err: unknown) => {
            log.error({ err }, 'could not queue the PagerDuty trigger');
            return 'PagerDuty could NOT be paged (Redis error, see logs)';
          });
    await rememberOutcome(deps, req, outcome.passed, outcome.passed ? null : failed ? `${failed.name}: ${failed.detail}` : 'see Slack', log);
    await say.finish(anchor, pitrTestFinished(req, outcome, escalation));
    if (!outcome.passed) throw new UnrecoverableError(`PITR restore test failed: ${failed?.name ?? ''}`);
    return { passed: true };
  } catch (err) {
    if (err instanceof UnrecoverableError) throw err;
    const reason = signal?.aborted
      ? `the job was cancelled (${String(signal.reason ?? 'no reason given')}); the scratch cluster was removed`
      : toUserMessage(err);
    log.error({ err, code: isBotError(err) ? err.code : 'internal' }, 'PITR restore test could not run');
    await reportPitrNotRun(deps, req, anchor ?? job.data.anchor, reason, log);
    throw new UnrecoverableError(reason);
  }
}

/** A PITR test that could not run is as bad as a failed one: paged, and said in the channel. */
export async function reportPitrNotRun(
  deps: PitrTestDeps,
  req: PitrTestInfo,
  anchor: Parameters<ReturnType<typeof quietNotifier>['finish']>[0],
  reason: string,
  log: Logger,
): Promise<void> {
  await rememberOutcome(deps, req, false, `could not run: ${reason}`, log);
  const escalation = await deps.escalation
    .failed(req.target, PITR_TEST_CONDITION, {
      summary: `PITR restore test of ${req.target} could not run: ${reason}`.slice(0, 1000),
      severity: 'critical',
      details: { jobId: req.jobId, asked: req.asked },
    })
    .catch(() => 'PagerDuty could NOT be paged (Redis error, see logs)');
  await quietNotifier(deps.notifier, log).finish(anchor, pitrTestError(req, reason, escalation));
}

/** A PITR job lost with its worker (killed twice): reported and paged like a test that could not run. */
export const lostPitrTest = (deps: PitrTestDeps, job: Job<RestoreTestJobData>, reason: string) =>
  reportPitrNotRun(deps, infoOf(job), job.data.anchor, reason, deps.log.child({ jobId: job.id, target: job.data.target }));

/**
 * The first-Saturday restore test of a target with point-in-time recovery also queues one PITR test of it, to a
 * random moment of the window. Queued as a job of its own (its own message, verdict and page).
 */
export async function queueScheduledPitrTest(deps: PitrTestDeps, target: string, log: Logger): Promise<void> {
  const t = deps.config.targets.find((x) => x.name === target);
  if (!t?.pitr || !deps.pitrQueue) return;
  const r = await enqueuePitrTest(deps.pitrQueue, {
    target,
    requestedBy: { source: 'schedule', userName: 'schedule restore-test' },
    pitr: { at: 'random' },
  }).catch((err: unknown) => {
    log.error({ err }, 'could not queue the scheduled PITR restore test');
    return null;
  });
  if (r) log.info({ pitrJobId: r.jobId, duplicate: r.duplicate }, 'scheduled PITR restore test queued');
}
