import { asOption } from '../restore-scope.ts';
import { UnrecoverableError, type Job } from 'bullmq';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { BotError, toUserMessage } from '../errors.ts';
import { RestoreJobData } from '../jobs/queues.ts';
import type { Escalation } from '../notifications/escalation.ts';
import type { Logger } from '../logger.ts';
import { backupMarkedDamaged, restoreFinished, restoreRunning } from '../notifications/restore-messages.ts';
import { selectionInfo } from './restore-selection.ts';
import type { MessageRef, Notifier } from '../notifications/types.ts';
import { databaseSizes, onlyRolesFailed, reopenAfterDeadSwap, runSelectiveRestore, stagingName } from '../postgres/restore/index.ts';
import { formatBytes } from '../format.ts';
import { findBackup, type Manifest, newestGoodWithin, restoreRecord, type RestoreRecord, type Storage } from '../storage/index.ts';
import { confirmDamage } from '../storage/scrub.ts';
import { quietNotifier } from './quiet-notifier.ts';
import { openAnchor } from './anchor.ts';
import { LOST_JOB_REASON } from './lost-jobs.ts';
import { checkedAtTheDoor } from './job-door.ts';
import { afterRoles, isFullRestore, isReplacement, ontoRestoreServer, runFullRestore, runReplacement } from './full-restore.ts';
import { swapBeside } from '../replacement-backups.ts';
import type { RedisConnection } from '../redis-client.ts';

export interface RestoreWorkerDeps {
  config: Config;
  storage: Storage;
  notifier: Notifier;
  /** Pages a restore job that cannot run at all (its data does not fit: job-door.ts). */
  escalation?: Escalation;
  log: Logger;
  now?: () => Date;
  /** The backup locks, held off or marked around a replacement's swap (jobs/replacement-marks.ts); without it (unit tests) neither. */
  marks?: { redis: RedisConnection; prefix: string };
}

/** A selective restore (`/restore`): into a new database, or — confirmed by an allowed user — an existing one. Always recorded. */
export function restoreProcessor(deps: RestoreWorkerDeps) {
  const now = deps.now ?? (() => new Date());
  return checkedAtTheDoor(
    RestoreJobData,
    'restore',
    deps,
    async (job: Job<RestoreJobData>, _token?: string, signal?: AbortSignal): Promise<{ database: string }> => {
      const data = job.data;
      const jobId = job.id ?? 'unknown';
      const log = deps.log.child({ jobId, target: data.target, backupId: data.backupId, into: data.into.database });
      const info = selectionInfo(job.data, job.id ?? 'unknown');
      const say = quietNotifier(deps.notifier, log);
      const anchor = await openAnchor(job, say.post, restoreRunning(info, 'starting'));
      const startedAt = now();
      let outcome: Awaited<ReturnType<typeof runSelectiveRestore>> | null = null;
      let failure: string | null = null;
      let manifest: Manifest | undefined;
      try {
        // The allowed-user check happened at confirmation; an overwrite without a confirmer never runs.
        if (!data.into.create && !data.confirmedBy)
          throw new BotError('bad_request', 'A restore into an existing database needs a confirmation by an allowed user; nothing was changed.');
        const target = findTarget(deps.config, data.target);
        manifest = await findBackup(deps.storage, data.backupId);
        const progress = (p: { phase: string; detail?: string }) => {
          if (anchor) void say.update(anchor, restoreRunning(info, `${p.phase.replace(/-/g, ' ')}${p.detail ? ` — ${p.detail}` : ''}`));
        };
        const onto = data.onto ? await ontoRestoreServer(deps, data.onto, manifest, log) : null;
        const whole = {
          manifest,
          serverUrl: onto?.serverUrl ?? target.url,
          owners: onto?.owners ?? false,
          // The restore server's roles may not be the source's: without --with-globals the verdict says so.
          newServer: onto ? 'RESTORE_SERVER_URL' : undefined,
          database: data.into.database,
          jobId,
          signal,
          log,
          progress,
        };
        outcome = isFullRestore(data)
          ? await afterRoles(runFullRestore(deps, whole), onto)
          : isReplacement(data)
            ? await runReplacement(deps, {
                ...whole,
                now: now(),
                expectedOid: data.into.oid,
                aroundSwap: swapBeside(deps.marks, deps.config, data, jobId, target.url),
              })
            : await runSelectiveRestore({
                manifest,
                storage: deps.storage,
                serverUrl: target.url,
                tables: data.tables,
                schemas: data.schemas,
                into: data.into,
                ...(deps.config.pgBinDir ? { pgBinDir: deps.config.pgBinDir } : {}),
                identityFile: deps.config.encryption.identityFile,
                ...(signal ? { signal } : {}),
                log,
                onProgress: progress,
              });
      } catch (err) {
        failure = toUserMessage(err);
        log.error({ err }, 'restore failed');
      }
      const problems = await finishRestore(deps, job, { anchor, outcome, failure, startedAt, log, manifest, signal });
      if (problems.length > 0) throw new UnrecoverableError(problems[0] ?? 'restore failed');
      return { database: data.into.database };
    },
  );
}

/** The restore's record beside the backups and its verdict in the channel; returns the problems (none: it worked). */
async function finishRestore(
  deps: RestoreWorkerDeps,
  job: Job<RestoreJobData>,
  o: {
    anchor: MessageRef | undefined;
    outcome: Awaited<ReturnType<typeof runSelectiveRestore>> | null;
    failure: string | null;
    startedAt: Date;
    log: Logger;
    lost?: boolean;
    /** A lost replacement's staging database, still on the server (RestoreRecord.staging). */
    staging?: string;
    /** The backup restored, read back when its checksums did not match (a lost job has none). */
    manifest?: Manifest | undefined;
    signal?: AbortSignal | undefined;
  },
): Promise<string[]> {
  const data = job.data;
  const now = deps.now ?? (() => new Date());
  const say = quietNotifier(deps.notifier, o.log);
  const record: RestoreRecord = {
    ...(data.onto ? { restoreServer: true } : {}),
    ...(o.staging ? { staging: o.staging } : {}),
    ...restoreRecord({
      outcome: o.outcome,
      failure: o.failure,
      target: data.target,
      backupId: data.backupId,
      startedAt: o.startedAt,
      finishedAt: now(),
      requestedBy: data.requestedBy,
      jobId: job.id ?? 'unknown',
      selection: { tables: data.tables, schemas: data.schemas, into: data.into.create ? null : data.into.database, created: data.into.create },
      database: data.into.database,
    }),
  };
  const problems = record.problems;
  // Named as SQL reads them (public."User", not public.User, which SQL takes for public.user: QA).
  const restored = o.outcome?.restoredTables.map((t) => ({ name: `${asOption(t.schema)}.${asOption(t.table)}`, rows: t.rows })) ?? [];
  await deps.storage.writeRecord(record).catch((err: unknown) => o.log.error({ err }, 'could not write the restore record'));
  const page = await pageWholeRestore(deps, job, problems, o.log);
  const verdict = restoreFinished(selectionInfo(job.data, job.id ?? 'unknown'), {
    problems,
    restoreMs: record.restoreMs,
    ...(record.swappedAt ? { swap: { at: record.swappedAt, ms: record.swapMs ?? 0 } } : {}),
    tables: restored,
    notes: [...(o.outcome?.notes ?? []), ...(page ? [page] : [])],
    ...(o.lost ? { lost: true } : {}),
  });
  const ref = await say.finish(o.anchor, verdict);
  // A sha256 that does not match is damage, once read again, as for a restore test: marked, so nothing offers it again.
  const checksums = o.outcome?.checked.checksums ?? [];
  const marked = o.manifest ? await confirmDamage(deps.storage, o.manifest, { by: 'a restore', checksums }, { log: o.log, signal: o.signal }) : null;
  const m = o.manifest;
  if (marked && m) await say.reply(ref, backupMarkedDamaged(m, marked, await newestGoodWithin(deps.storage, m), onlyRolesFailed(m, checksums)));
  return problems;
}

/**
 * A whole-database restore or replacement is recovery work during an incident: when it fails, PagerDuty hears of
 * it (critical, `pg-backup-bot/<target>/restore`), and the next one that works resolves the page. Selective
 * restores are an engineer's own errand and page nobody. Returns the line for the verdict, if any.
 */
async function pageWholeRestore(deps: RestoreWorkerDeps, job: Job<RestoreJobData>, problems: string[], log: Logger): Promise<string | null> {
  const data = job.data;
  if (!deps.escalation || !(isFullRestore(data) || isReplacement(data))) return null;
  const what = isReplacement(data) ? `Replacing ${data.into.database}` : `Full restore of ${data.target}`;
  const details = { jobId: job.id ?? 'unknown', backupId: data.backupId, database: data.into.database };
  return problems.length === 0
    ? deps.escalation.passed(data.target, 'restore', { summary: `${what} from ${data.backupId} worked`, details }).catch(() => null)
    : deps.escalation
        .failed(data.target, 'restore', { summary: `${what} from ${data.backupId} FAILED: ${problems[0] ?? ''}`, severity: 'critical', details })
        .catch((err: unknown) => {
          log.error({ err }, 'could not queue the PagerDuty trigger');
          return 'PagerDuty could NOT be paged (Redis error, see logs)';
        });
}

/**
 * A restore job BullMQ gave up on without our processor (its worker died mid-restore, and so did the retry):
 * recorded and said in the channel as failed, with a warning that the database may hold part of the restore.
 */
export function lostRestoreHandler(deps: RestoreWorkerDeps) {
  return async (job: Job<RestoreJobData>): Promise<void> => {
    const data = job.data;
    const log = deps.log.child({ jobId: job.id, target: data.target, backupId: data.backupId, into: data.into.database });
    // pg_restore may have outlived its killed worker (a SIGKILL does not reach children), so say what is known.
    const db = data.into.database;
    // A replacement killed mid-swap left the live database refusing connections: that is undone here, not left to be found.
    const dead = isReplacement(data) && !data.onto ? await afterLostReplacement(deps, data, job.id ?? '', log) : null;
    const state = data.into.create
      ? `${db} may hold part of the restore, or all of it: check it, or drop it, before anyone uses it`
      : isReplacement(data)
        ? `the backup was being restored beside ${db}${dead?.staging ? ` into ${dead.staging.name} (${formatBytes(dead.staging.bytes)}, perhaps part of it)` : ''}, and ${db} is replaced only at the very end, by renaming: check whether ${db} or a ${db}_replaced_… database is the one you expect before anyone uses it${dead?.staging ? `. ${dead.staging.name} is left on the server; once sure, \`/restore drop ${dead.staging.name}\` removes it` : ''}`
        : `the restore runs in one transaction, so ${db} holds all of it or none of it: check which before anyone uses it`;
    await finishRestore(deps, job, {
      anchor: data.anchor,
      outcome: null,
      failure: `${LOST_JOB_REASON}; ${state}${dead?.reopened ? `. ${dead.reopened}` : ''}`,
      lost: true,
      startedAt: new Date(job.processedOn ?? job.timestamp),
      log,
      ...(dead?.staging ? { staging: dead.staging.name } : {}),
    });
  };
}

/**
 * A lost replacement: the live database opened again if it was killed mid-swap (reopenAfterDeadSwap), and the job's
 * staging database if it is still there (the swap did not happen). A failure to look is said, never thrown.
 */
async function afterLostReplacement(
  deps: RestoreWorkerDeps,
  data: RestoreJobData,
  jobId: string,
  log: Logger,
): Promise<{ reopened: string | null; staging: { name: string; bytes: number } | null }> {
  const staging = stagingName(jobId);
  let url: string;
  let reopened: string | null;
  try {
    url = findTarget(deps.config, data.target).url;
    reopened = await reopenAfterDeadSwap(url, data.into.database, staging);
  } catch (err) {
    log.warn({ err }, 'could not check whether the database still refuses connections');
    reopened = `Could not check whether ${data.into.database} still refuses new connections (${toUserMessage(err)}): if it does, ALTER DATABASE … ALLOW_CONNECTIONS true`;
    return { reopened, staging: null };
  }
  const bytes = await databaseSizes(url, [staging]).then(
    (sizes) => sizes.get(staging),
    (err: unknown) => log.warn({ err }, 'could not look for the staging database'),
  );
  return { reopened, staging: bytes === undefined ? null : { name: staging, bytes } };
}
