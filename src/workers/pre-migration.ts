import { checkedSummary } from '../notifications/restore-messages.ts';
import type { Queue } from 'bullmq';
import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { MigrationLabel, type ChecklistJob, type PreMigrationContext, type PreMigrationRestoreResult } from '../jobs/checklist-data.ts';
import type { BackupJobData, RestoreTestJobData } from '../jobs/queues.ts';
import { totalBytes, type Manifest } from '../storage/index.ts';
import type { RestoreRecord } from '../storage/index.ts';

/**
 * `/backup pre-migration`: backup → restore test of that backup → the pre-migration checklist with both results.
 * Each step is queued by the one before it, with a job id derived from the backup job's, so a retried step never
 * starts a second test or posts a second checklist (BullMQ ignores an id it already has).
 */

/** BullMQ refuses custom job ids with `:` (scheduler job ids have them). */
const idPart = (jobId: string) => jobId.replace(/:/g, '-');

/** The queues the follow-up steps go to. */
export interface PreMigrationQueues {
  restoreTest: Queue<RestoreTestJobData>;
  checklist: Queue<ChecklistJob>;
}

function contextOf(data: BackupJobData, backup: PreMigrationContext['backup']): PreMigrationContext {
  // The slash command validated the label; a CLI or hand-made job may not have one.
  const label = MigrationLabel.safeParse(data.label).success ? (data.label as string) : 'unlabelled';
  return { label, requestedBy: data.requestedBy, backup };
}

/** After the backup succeeded: test that very backup. Returns the restore-test job id. */
export async function queuePreMigrationRestoreTest(queue: Queue<RestoreTestJobData>, data: BackupJobData, backupJobId: string, m: Manifest): Promise<string> {
  const jobId = `restore-test-${idPart(backupJobId)}`;
  const test: RestoreTestJobData = {
    target: data.target,
    backupId: m.backupId,
    requestedBy: data.requestedBy,
    preMigration: contextOf(data, {
      ok: true,
      backupId: m.backupId,
      jobId: backupJobId,
      bytes: totalBytes(m),
      durationMs: m.durationMs,
      retainUntil: m.retainUntil,
    }),
  };
  // Queue<T>.add's name/data types are generic over the queue's declared names; the cast keeps the call typed.
  const job = await (queue as unknown as Queue).add('restore-test', test, { jobId });
  return job.id ?? jobId;
}

/**
 * After the backup failed: the checklist is posted anyway, both bot items failed with the reason. The people
 * waiting to migrate need a clear "no restore point: do not migrate", not a checklist that never comes.
 */
export async function queueFailedPreMigrationChecklist(queue: Queue<ChecklistJob>, data: BackupJobData, backupJobId: string, reason: string): Promise<void> {
  const ctx = contextOf(data, { ok: false, jobId: backupJobId, reason: reason.slice(0, 500) });
  await addChecklist(queue, data.target, ctx, null);
}

/** After the restore test finished, passed or not (or could not run): the checklist with both results. */
export async function queuePreMigrationChecklist(queue: Queue<ChecklistJob>, test: RestoreTestJobData, result: PreMigrationRestoreResult): Promise<void> {
  if (!test.preMigration) return;
  await addChecklist(queue, test.target, test.preMigration, result);
}

async function addChecklist(
  queue: Queue<ChecklistJob>,
  target: string,
  ctx: PreMigrationContext,
  restoreTest: PreMigrationRestoreResult | null,
): Promise<void> {
  const data: ChecklistJob = { kind: 'pre-migration', target, ...ctx, restoreTest };
  await (queue as unknown as Queue).add('checklist', data, { jobId: `checklist-pre-migration-${idPart(ctx.backup.jobId)}` });
}

/** A restore-test record as the checklist needs it. */
export function restoreResultOf(record: RestoreRecord, jobId: string): PreMigrationRestoreResult {
  return {
    passed: record.passed === true,
    jobId,
    restoreMs: record.restoreMs,
    durationMs: record.durationMs,
    tables: record.checked.tables,
    checked: checkedSummary(record).slice(0, 1000),
    problems: record.problems.slice(0, 5).map((p) => p.slice(0, 500)),
  };
}

/** A restore test that could not run at all. */
export function restoreNotRun(reason: string, jobId: string): PreMigrationRestoreResult {
  return { passed: null, jobId, restoreMs: null, durationMs: null, tables: null, problems: [reason.slice(0, 500)] };
}

/**
 * The backup worker's hand-off, which never throws (the backup's own verdict stands whatever happens here):
 * success → the restore test, failure → the checklist saying so. Returns a line for the backup's thread.
 */
export async function handOffPreMigration(
  queues: PreMigrationQueues | undefined,
  data: BackupJobData,
  backupJobId: string,
  outcome: { manifest: Manifest } | { reason: string },
  log: Logger,
): Promise<string | null> {
  if (data.kind !== 'pre-migration') return null;
  if (!queues) {
    log.warn('pre-migration backup without follow-up queues: no restore test or checklist will follow');
    return null;
  }
  try {
    if ('manifest' in outcome) {
      const testJob = await queuePreMigrationRestoreTest(queues.restoreTest, data, backupJobId, outcome.manifest);
      return `:arrow_right: Pre-migration: restore test of this backup queued (job \`${testJob}\`); the pre-migration checklist follows it.`;
    }
    await queueFailedPreMigrationChecklist(queues.checklist, data, backupJobId, outcome.reason);
    return null;
  } catch (err) {
    log.error({ err }, 'could not queue the pre-migration follow-up');
    return `:warning: Pre-migration: the ${'manifest' in outcome ? 'restore test' : 'checklist'} could not be queued (${toUserMessage(err)}); run \`/restore-test ${'manifest' in outcome ? outcome.manifest.backupId : 'latest'}\` by hand.`;
  }
}

/** The restore-test worker's hand-off to the checklist; never throws (the test's verdict stands on its own). */
export async function handOffRestoreTest(
  queue: Queue<ChecklistJob> | undefined,
  test: RestoreTestJobData,
  result: PreMigrationRestoreResult,
  log: Logger,
): Promise<void> {
  if (!test.preMigration) return;
  if (!queue) {
    log.warn('pre-migration restore test without a checklist queue: no checklist will be posted');
    return;
  }
  await queuePreMigrationChecklist(queue, test, result).catch((err: unknown) => log.error({ err }, 'could not queue the pre-migration checklist'));
}
