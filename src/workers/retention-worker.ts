import { UnrecoverableError, type Job } from 'bullmq';
import { type AuditLog, retentionDeletion, scrubRepair } from '../audit.ts';
import { toUserMessage } from '../errors.ts';
import { backupsInUse, readersOf } from '../jobs/backups-in-use.ts';
import type { Queues } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { retentionMessage, retentionSummary, retentionWorthSaying, type RetentionSummary } from '../notifications/retention-messages.ts';
import { escapeMrkdwn } from '../format.ts';
import type { Notifier } from '../notifications/types.ts';
import { RetentionJobData } from '../schedules/index.ts';
import { runRetention } from '../storage/index.ts';
import type { Storage } from '../storage/index.ts';
import { quietNotifier } from './quiet-notifier.ts';
import { type RepairOptions, repairFromCopies } from '../storage/copy-scrub.ts';
import { copyScrubLines, scrubLines } from '../notifications/scrub-messages.ts';
import { rememberedReadBack, type ScrubReport, type ScrubState, scrubBackups } from '../storage/scrub.ts';
import { checkedAtTheDoor } from './job-door.ts';
import type { Config } from '../config.ts';
import type { CliReadersAt } from '../jobs/cli-readers.ts';
import { expireRestoredDatabases } from '../restored-databases.ts';
import { pitrRetentionFailed, pitrRetentionReport, pitrRetentionWorthSaying } from '../notifications/pitr-retention-messages.ts';
import { pitrAuditResult, pitrRetentionTargets, runPitrRetention } from '../postgres/pitr/pitr-retention.ts';
import { archiveDamageAdvice, type PitrScrubReport, scrubbedPitrTargets, scrubPitrArchives } from '../postgres/pitr/pitr-scrub.ts';
import { pitrInS3 } from '../postgres/pitr/pitr-location.ts';
import { scrubKey } from '../postgres/pitr/pitr-scrub-decode.ts';

export interface RetentionWorkerDeps {
  storage: Storage;
  copies: readonly Storage[];
  queues: Pick<Queues, 'backup' | 'restoreTest' | 'restore'>;
  notifier: Notifier;
  audit: AuditLog;
  log: Logger;
  now?: () => Date;
  /** For `restore.expireAfterDays`: databases restores made are dropped with the backups (restored-databases.ts). */
  config?: Config;
  /** Where the CLI's readers hold backups (jobs/cli-readers.ts): `restore-test` run by hand beside the workers. */
  cliReaders?: CliReadersAt;
  /** The checksum scrub's memory (storage/scrub.ts); without it, no scrub runs. */
  scrub?: ScrubState;
  /** The point-in-time archive's scrub memory (pitr-scrub.ts), apart from the backups' (each forgets what it does not list). */
  pitrScrub?: ScrubState;
  /**
   * A copy's scrub memory and the claim a rewrite takes (storage/copy-scrub.ts, jobs/redis-lock.ts repairClaim);
   * without them, copies are neither read back nor used to mend the primary.
   */
  copyScrub?: { state: (copy: Storage) => ScrubState; claim: RepairOptions['claim'] };
}

/**
 * The daily retention job (scheduler `pgbb:retention`): deletes expired and unfinished backups on the primary and
 * every copy, audits each deletion, and reports in the channel when something was (or would be) deleted or failed.
 * A failed deletion fails the job, after the report, so it shows in the queue; the next day's run tries again.
 */
export function retentionProcessor(deps: RetentionWorkerDeps) {
  // Checked at the door like every job (job-door.ts): retention that does not run lets the disk fill up, so a job whose
  // data does not fit is said in the channel.
  return checkedAtTheDoor(
    RetentionJobData,
    'retention',
    deps,
    async (job: Job<RetentionJobData>, _token?: string, signal?: AbortSignal): Promise<RetentionSummary> => {
      const { dryRun } = job.data;
      const jobId = job.id ?? null;
      const log = deps.log.child({ jobId, dryRun });
      const say = quietNotifier(deps.notifier, log);
      let run: Awaited<ReturnType<typeof runRetention>>;
      try {
        run = await runRetention({
          primary: deps.storage,
          copies: deps.copies,
          dryRun,
          ...(deps.config ? { timezone: deps.config.timezone } : {}),
          inUse: () => backupsInUse(deps.queues, deps.cliReaders),
          // The repair's own claim, held while a damaged backup is deleted: never under a rewrite.
          ...(deps.copyScrub ? { claimRepair: deps.copyScrub.claim } : {}),
          log,
          readBack: rememberedReadBack((s) => (s === deps.storage ? deps.scrub : deps.copyScrub?.state(s)), deps.now),
          ...(deps.now ? { now: deps.now } : {}),
          onOutcome: (o) => auditDeletion(deps, jobId, `${o.storage} ${o.backupId}`, o.error === null ? `deleted: ${o.reason}` : `delete failed: ${o.error}`),
        });
      } catch (err) {
        // Retention not running lets the disk fill up unnoticed: say so once per run, in one line.
        log.error({ err }, 'retention could not run');
        await say.post({ text: `:warning: Retention did not run, nothing was deleted: ${escapeMrkdwn(toUserMessage(err))}` });
        throw new UnrecoverableError(toUserMessage(err));
      }
      const summary = retentionSummary(run);
      log.info({ ...summary }, 'retention finished');
      await expireRestored(deps, dryRun, say);
      const pitr = deps.config ? await pitrRetention(deps, deps.config, dryRun, jobId, log) : null;
      const scrub = await scrubAfter(deps, dryRun, log, signal);
      // Damage mended from the off-site copies and the copies read back (copy-scrub.ts), never under a reader.
      const repaired = dryRun ? null : await repairAfterScrub(deps, scrub, jobId, log, signal);
      const archiveScrub = await pitrScrubAfter(deps, dryRun, log, signal);
      // One message: the logical backups' report, the scrub's, then point-in-time recovery's (each only when worth saying).
      const parts = [
        ...(retentionWorthSaying(summary) ? [retentionMessage(run).text] : []),
        ...scrubLines(scrub, repaired?.healing ?? null),
        ...(repaired?.copies ?? []).flatMap(copyScrubLines),
        ...pitrScrubLines(archiveScrub, Boolean(deps.config?.encryption.identityFile)),
        ...(pitr && pitrRetentionWorthSaying(pitr)
          ? [`${pitrRetentionFailed(pitr) ? ':warning: ' : ''}${escapeMrkdwn(pitrRetentionReport(pitr, deps.config?.timezone))}`]
          : []),
      ];
      if (parts.length) await say.post({ text: parts.join('\n') });
      if (summary.failed > 0 || summary.unreadable.length > 0 || (pitr && pitrRetentionFailed(pitr))) {
        throw new UnrecoverableError(
          `retention: ${summary.failed} deletion(s) failed, ${summary.unreadable.length} storage(s) unreadable${pitr && pitrRetentionFailed(pitr) ? ', point-in-time recovery retention failed' : ''} (reported in the channel)`,
        );
      }
      return summary;
    },
  );
}

/** A scrub run after the deletions (nothing is read that is about to go), logged; its report, or why it could not run. */
async function runScrub<R extends { damaged: unknown[]; unreadable: unknown[]; alreadyDamaged: unknown[] }>(
  what: string,
  log: Logger,
  run: () => Promise<R>,
): Promise<R | string> {
  try {
    const report = await run();
    const counts = { damaged: report.damaged.length, unreadable: report.unreadable.length, alreadyDamaged: report.alreadyDamaged.length };
    log.info({ ...(report as object), ...counts } as Record<string, unknown>, `${what} finished`);
    return report;
  } catch (err) {
    log.error({ err }, `the ${what} could not run`);
    return toUserMessage(err);
  }
}

/** The checksum scrub of the stored backups; a dry run only plans, so it reads nothing. */
function scrubAfter(deps: RetentionWorkerDeps, dryRun: boolean, log: Logger, signal?: AbortSignal): Promise<ScrubReport | string | null> {
  const state = deps.scrub;
  if (dryRun || !state) return Promise.resolve(null);
  return runScrub('checksum scrub', log, () => scrubBackups({ storage: deps.storage, state, now: (deps.now ?? (() => new Date()))(), log, signal }));
}

/** The rewrites from the copies and the copies' scrub, after the primary's; each rewrite in the audit trail. */
function repairAfterScrub(deps: RetentionWorkerDeps, scrub: ScrubReport | string | null, jobId: string | null, log: Logger, signal?: AbortSignal) {
  const { copyScrub } = deps;
  if (!copyScrub || deps.copies.length === 0) return null;
  const damaged = scrub && typeof scrub !== 'string' ? [...scrub.damaged, ...scrub.alreadyDamaged] : [];
  const options = {
    primary: deps.storage,
    copies: deps.copies.map((storage) => ({ storage, state: copyScrub.state(storage) })),
    now: (deps.now ?? (() => new Date()))(),
    log,
    signal,
    inUse: async () => readersOf(await backupsInUse(deps.queues, deps.cliReaders)),
    claim: copyScrub.claim,
    onRewritten: (w: { to: string; backupId: string; from: string }) =>
      deps.audit.append(scrubRepair(`${w.to} ${w.backupId}`, `rewritten from ${w.from}: it was damaged`, { jobId, userName: null })),
  };
  return repairFromCopies(options, damaged);
}

/** The point-in-time archive's checksum scrub (pitr-scrub.ts), after its retention; none in a dry run. */
function pitrScrubAfter(deps: RetentionWorkerDeps, dryRun: boolean, log: Logger, signal?: AbortSignal): Promise<PitrScrubReport | string | null> {
  const { config, pitrScrub: state } = deps;
  const targets = config ? scrubbedPitrTargets(config, pitrInS3(config)) : [];
  if (dryRun || !state || !config || targets.length === 0) return Promise.resolve(null);
  const now = (deps.now ?? (() => new Date()))();
  return runScrub('archive scrub', log, async () => {
    const decode = { identity: await scrubKey(config.encryption.identityFile) };
    return scrubPitrArchives({ root: config.backupDir, targets, state, now, log, signal, decode });
  });
}

function pitrScrubLines(scrub: PitrScrubReport | string | null, keyConfigured: boolean): string[] {
  if (scrub === null) return [];
  if (typeof scrub === 'string') return [`:warning: The checksum scrub of the point-in-time archive could not run: ${escapeMrkdwn(scrub)}`];
  // Without an identity file on the worker, hashes only is what was set up; with one that cannot decode, it is news.
  const undecoded =
    scrub.notDecodedWhy && keyConfigured
      ? [`:warning: The archive scrub could not decode ${scrub.notDecoded} WAL file(s): ${escapeMrkdwn(scrub.notDecodedWhy)}.`]
      : [];
  return [
    ...undecoded,
    ...scrub.damaged.map(
      (d) =>
        `:rotating_light: ${d.what} of ${d.target} is damaged: ${escapeMrkdwn(d.why)}. ${archiveDamageAdvice(d, `\`/backup now --physical ${d.target}\``)}`,
    ),
    ...scrub.unreadable.map((d) => `:warning: The checksum scrub could not read ${d.what} of ${d.target}: ${escapeMrkdwn(d.why)}; it tries again tomorrow.`),
  ];
}

/** Restored databases past `restore.expireAfterDays`, dropped (or, dry, named) and said in one post. */
async function expireRestored(deps: RetentionWorkerDeps, dryRun: boolean, say: ReturnType<typeof quietNotifier>): Promise<void> {
  const days = deps.config?.restore.expireAfterDays;
  if (!deps.config || !days) return;
  const lines = await expireRestoredDatabases({ config: deps.config, storage: deps.storage }, { days, now: (deps.now ?? (() => new Date()))(), dryRun }).catch(
    (err: unknown) => [`could not look at the restored databases: ${toUserMessage(err)}`],
  );
  if (lines.length > 0)
    await say.post({ text: `Restored databases older than ${days} days (restore.expireAfterDays):\n${lines.map((l) => `• ${l}`).join('\n')}` });
}

/** Point-in-time recovery's base backups and WAL, for every target with a `pitr` section; each deletion audited. */
function pitrRetention(deps: RetentionWorkerDeps, config: Config, dryRun: boolean, jobId: string | null, log: Logger) {
  return runPitrRetention({
    root: config.backupDir,
    targets: pitrRetentionTargets(config),
    offsite: config,
    dryRun,
    log,
    ...(deps.now ? { now: deps.now } : {}),
    onOutcome: (o) => auditDeletion(deps, jobId, `pitr ${o.target} ${o.what} ${o.name}`, pitrAuditResult(o)),
  });
}

/** One deletion (or failed deletion) of a retention run in the audit trail: what, and how it went. */
function auditDeletion(deps: RetentionWorkerDeps, jobId: string | null, args: string, result: string) {
  return deps.audit.append(retentionDeletion(args, result, { jobId, userName: null }));
}
