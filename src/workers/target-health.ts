import type { Job, Worker } from 'bullmq';
import { checkFromRedis, checkTarget, diskSubject, healthSources, inputDiskNeed } from '../health/index.ts';
import { targetThresholds } from '../health/index.ts';
import type { ConditionResult } from '../health/index.ts';
import { reasonOf } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { judgeBackupDisk, judgeBackupDiskAfter } from './disk-health.ts';
import { report, type TargetHealthDeps } from './health-report.ts';
import { judgeUnchecked, judgeUncheckedAfter } from './unchecked-health.ts';

export type { TargetHealthDeps };

/**
 * Checks one target's conditions, remembers them, and says what changed; resolves to the conditions. `backupDisk`
 * judges the disk every target writes to, once for all of them, from its figure now and each target's need as its
 * last check left it in Redis (disk-health.ts); `backupDiskAfter` does so after a job when the disk was failing or
 * the job's target's disk is.
 */
export type TargetEvaluator = ((target: string, log?: Logger) => Promise<ConditionResult[]>) & {
  backupDisk(log?: Logger): Promise<ConditionResult>;
  backupDiskAfter(results: readonly ConditionResult[], log?: Logger): Promise<ConditionResult | null>;
  /** The targets that cannot be checked, paged once for their storage (unchecked-health.ts). */
  unchecked(log?: Logger): Promise<ConditionResult>;
  uncheckedAfter(log?: Logger): Promise<ConditionResult | null>;
};

/**
 * A condition that starts failing pages once and posts once; when it clears, the page is resolved and the channel
 * told. The remembered state makes this hold across restarts, retries and processes. Checks of one target run one
 * after another in this process, and so do the disk's: a check that read the target before a backup landed must not
 * apply its stale verdict after the check that saw the backup, or the page would open again.
 */
export function createTargetEvaluator(deps: TargetHealthDeps): TargetEvaluator {
  const now = deps.now ?? (() => new Date());
  const inTurn = serialized();
  const evaluate = (target: string, log = deps.log) => inTurn(`target:${target}`, () => evaluateTarget(deps, target, now(), log));
  const backupDisk = (log = deps.log) => inTurn('disk', () => judgeBackupDisk(deps, now(), log));
  const backupDiskAfter = (results: readonly ConditionResult[], log = deps.log) => inTurn('disk', () => judgeBackupDiskAfter(deps, results, now(), log));
  const unchecked = (log = deps.log) => inTurn('unchecked', () => judgeUnchecked(deps, now(), log));
  const uncheckedAfter = (log = deps.log) => inTurn('unchecked', () => judgeUncheckedAfter(deps, now(), log));
  return Object.assign(evaluate, { backupDisk, backupDiskAfter, unchecked, uncheckedAfter });
}

/** One after another per key, in this process. */
function serialized() {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, run: () => Promise<T>): Promise<T> => {
    const next = (tails.get(key) ?? Promise.resolve()).catch(() => undefined).then(run);
    tails.set(key, next);
    const clear = () => tails.get(key) === next && tails.delete(key);
    next.then(clear, clear);
    return next;
  };
}

async function evaluateTarget(deps: TargetHealthDeps, target: string, at: Date, log: Logger): Promise<ConditionResult[]> {
  const { config } = deps;
  // The same sources as /backup health (pitr targets' WAL stream, archive and slot included), judged at `at`.
  const sources = {
    ...healthSources(config, { storage: deps.storage, runs: deps.runs, backupQueue: deps.backupQueue }),
    thresholdsFor: targetThresholds(config, () => at),
  };
  const checked = await checkTarget(sources, target, at).catch(async (err: unknown) => {
    await uncheckedFor(deps, target, err, at, log, () => checkFromRedis(sources, target, at));
    throw err;
  });
  const { input } = checked;
  // A window broken for good (a gap, a new timeline): a base backup started now opens it again; the page says so.
  const started = deps.afterBreak ? await deps.afterBreak(target, input.walHealth?.archive, at, log) : null;
  // News, not a verdict: a Redis hiccup here must not leave the target unchecked.
  await deps.promotionNotice?.(target, input.walHealth?.archive, at, log).catch((err: unknown) => log.warn({ err, target }, 'could not tell of a promotion'));
  // Its own sentence: the evidence ends in the window ("… to 02:34:44 UTC"), with no full stop (QA: "UTC The bot started").
  const results = started
    ? checked.results.map((r) =>
        r.condition === 'wal-gap' && r.status === 'failing' ? { ...r, evidence: `${r.evidence.replace(/\.?$/, '.')} ${started}` } : r,
      )
    : checked.results;
  // What the disk's condition judges this target by (disk-health.ts), beside its verdicts.
  await deps.state.putDiskNeed(diskSubject(deps.storage), inputDiskNeed(input), at);
  const applied = await deps.state.apply(target, [...results, checkedNow(target)], at);
  for (const a of applied) await report(deps, target, a, log);
  return results;
}

/** What stopped the check: ours as said to users; another (a filesystem's EIO) by its own message, which names it. */
const whyUnchecked = (err: unknown) => reasonOf(err).replace(/\.$/, '').slice(0, 400);

const checkedNow = (target: string): ConditionResult => ({
  condition: 'unchecked',
  status: 'ok',
  severity: 'error',
  summary: `${target}: its health is checked again`,
  evidence: 'every condition judged',
});

/**
 * A target whose checks cannot run (QA: S3 answering 500 with S3_MODE=primary; every run only logged "health checks
 * could not run", while the RPO was past its objective, and nothing paged or posted, not even its recovery). Its
 * other conditions keep their last verdicts, and it fails `unchecked`, quietly: shown in `/backup health`, paged
 * once for every such target of its storage (unchecked-health.ts); the next check that runs clears it.
 */
async function uncheckedFor(
  deps: TargetHealthDeps,
  target: string,
  err: unknown,
  at: Date,
  log: Logger,
  fromRedis: () => Promise<ConditionResult[]>,
): Promise<void> {
  // The WAL stream and RPO are in Redis: still judged, so an RPO that climbs through a storage outage pages as such.
  const judged = await fromRedis().catch((redisErr: unknown) => {
    log.warn({ err: redisErr, target }, 'could not judge the WAL stream from Redis either');
    return [];
  });
  const some = judged.length > 0 ? `; the WAL stream and RPO are still judged from Redis` : '';
  const failing: ConditionResult = {
    condition: 'unchecked',
    status: 'failing',
    severity: 'error',
    summary: `${target}: its health cannot be checked`,
    evidence: `no condition ${some ? 'read from storage ' : ''}could be judged since the check failed: ${whyUnchecked(err)}${some}; the last verdicts stand, pages already open stay open`,
    quiet: true,
  };
  try {
    for (const a of await deps.state.apply(target, [...judged, failing], at)) await report(deps, target, a, log);
  } catch (stateErr) {
    log.warn({ err: stateErr, target }, 'could not record that the health check failed');
  }
}

/**
 * A target's conditions are judged again as soon as one of its backups, restore tests or restores ends, so a page
 * resolves seconds after the fix instead of at the next health run. After the job has left the active list (the
 * `completed`/`failed` events), so a finished backup is not counted as running. Never fails or delays the job.
 */
export function reevaluateAfterJobs(workers: readonly Worker[], evaluate: TargetEvaluator, log: Logger): void {
  for (const worker of workers) {
    const after = (job: Job | undefined) => {
      const target: unknown = job?.data?.target;
      if (typeof target !== 'string') return;
      const l = log.child({ after: job?.id, queue: worker.name });
      evaluate(target, l)
        .then((results) => evaluate.backupDiskAfter(results, l))
        // A target that cannot be checked after its job is judged with its storage's others at once (second reader:
        // the page waited for the next health run).
        .then(
          () => evaluate.uncheckedAfter(l),
          (err: unknown) => evaluate.unchecked(l).then(() => Promise.reject(err)),
        )
        .catch((err: unknown) => log.warn({ err, target, jobId: job?.id, queue: worker.name }, 'could not check health after a job'));
    };
    worker.on('completed', after);
    worker.on('failed', after);
  }
}
