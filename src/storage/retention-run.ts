import { BotError, toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { failedRestoreTestIds, planRetention, type RetentionPlan } from './retention-plan.ts';
import { keptConfirmed, type Planned, type ReadBackAndMark } from './retention-confirm.ts';
import type { Storage, UnfinishedBackup } from './types.ts';
import { timeOfBackupId } from './catalog.ts';

/**
 * The retention job's executor: gathers planRetention's input from each storage, then deletes what the plan says —
 * expired backups through deleteBackup (artifacts first, manifest last), unfinished ones through discardUnfinished —
 * on the primary and on every copy, each planned on its own contents (a copy may still hold backups the primary has
 * lost, and its own newest good backup is kept). One failed delete never stops the others; it is reported.
 */

/** What is reading or writing backups right now, from the job queues (jobs/backups-in-use.ts). */
export interface BackupsInUse {
  /** Backups a restore test is reading or is queued to read. */
  restoreTests: ReadonlySet<string>;
  /** Backups a selective restore is reading or is queued to read. */
  restores: ReadonlySet<string>;
  /** Backup jobs running now: their backup ids are chosen when they start and are not in the job data. */
  runningBackups: ReadonlyArray<{ target: string; startedAt: Date }>;
}

export interface RetentionOutcome {
  storage: string;
  target: string;
  backupId: string;
  what: 'expired' | 'unfinished';
  reason: string;
  /** null: deleted; otherwise why it could not be. */
  error: string | null;
}

export interface StorageRetention {
  storage: string;
  role: 'primary' | 'copy';
  /** null when the storage could not be read at all (`error` says why): nothing was deleted there. */
  plan: RetentionPlan | null;
  error: string | null;
  /** One per deletion tried; empty in a dry run. */
  outcomes: RetentionOutcome[];
}

export interface RetentionRun {
  dryRun: boolean;
  storages: StorageRetention[];
  /** Stopped by its signal (the CLI's Ctrl-C) between two deletions: what was not tried is left out of the plans. */
  canceled?: true;
}

export interface RetentionRunOptions {
  primary: Storage;
  copies?: readonly Storage[];
  dryRun: boolean;
  /** Asked when planning each storage and again right before each deletion, so a restore test started meanwhile wins. */
  inUse: () => Promise<BackupsInUse>;
  log: Logger;
  now?: () => Date;
  /** The configured zone, for the deadlines in the report (the schedules' and checklists' zone); default UTC. */
  timezone?: string;
  /** Stops the run between two deletions (one under way finishes, so nothing is left half-deleted by the stop). */
  signal?: AbortSignal;
  /**
   * Claims a damaged backup as a repair does (jobs/redis-lock.ts repairClaim), held while it is deleted: one a repair
   * is rewriting is not deleted under it, nor rewritten while it is deleted (second reader: a bare check raced).
   */
  claimRepair?: (target: string, backupId: string) => Promise<{ release(): Promise<void> } | string>;
  /** After each deletion tried (the audit trail). Its failures are logged, never fatal. */
  onOutcome?: (o: RetentionOutcome) => Promise<void>;
  /**
   * Reads a backup back whole and marks it damaged when it is (storage/scrub.ts readBackAndMark): asked of the backup
   * kept as a target's newest good one before any of that target's expired backups is deleted (keptConfirmed).
   */
  readBack: ReadBackAndMark;
}

const CLOCK_MARGIN_MS = 5 * 60_000; // a worker names its backup by its own clock: clocks a little apart

/** An unfinished directory named at or after a running backup job of its target started may be that job's. */
export function beingWritten(inUse: BackupsInUse, u: { target: string; backupId: string }): boolean {
  const t = timeOfBackupId(u.backupId);
  return inUse.runningBackups.some((r) => r.target === u.target && (t === null || t >= r.startedAt.getTime() - CLOCK_MARGIN_MS));
}

const UNFINISHED_WHAT: Record<UnfinishedBackup['state'], string> = {
  'no-manifest': 'unfinished (no manifest)',
  'artifacts-missing': 'half-deleted (manifest left, an artifact gone or cut short)',
  // By the scrub, a restore test or retention's own read-back: the marker says which (`/backup list` shows it).
  'marked-damaged': 'marked damaged',
};

async function planStorage(storage: Storage, failedTests: ReadonlySet<string>, inUse: BackupsInUse, now: Date, timezone?: string): Promise<Planned> {
  const [backups, unfinished] = await Promise.all([
    storage.list(),
    // Every age (a clock a little ahead, too): the plan keeps young ones (being written); an expired damaged one goes now.
    storage.listUnfinished ? storage.listUnfinished(Number.NEGATIVE_INFINITY, now) : Promise.resolve([]),
  ]);
  const plan = planRetention({
    backups,
    now,
    ...(timezone ? { timezone } : {}),
    runningRestoreTests: inUse.restoreTests,
    runningRestores: inUse.restores,
    failedRestoreTests: failedTests,
    unfinished: unfinished.map((u) => ({
      target: u.target,
      backupId: u.backupId,
      ageMs: now.getTime() - u.modifiedAt.getTime(),
      what: UNFINISHED_WHAT[u.state],
      ...(u.retainUntil !== undefined ? { retainUntil: u.retainUntil } : {}),
    })),
    // Read after list(), which finds them. Past its deadline, one is among the unfinished above, deleted as expired.
    damaged: (storage.damaged?.() ?? []).filter((d) => !d.expired),
    runningBackups: new Set(unfinished.filter((u) => beingWritten(inUse, u)).map((u) => u.backupId)),
  });
  return { plan, states: new Map(unfinished.map((u) => [u.backupId, u.state])), backups, failedTests };
}

export async function runRetention(o: RetentionRunOptions): Promise<RetentionRun> {
  const now = o.now ?? (() => new Date());
  // Records live with the primary; a copy's backups have the same ids, so one answer serves every storage. Not
  // knowing which backups failed their test could leave only a bad one kept: then nothing is deleted anywhere.
  const failedTests = failedRestoreTestIds(await o.primary.listRecords('restore-test'));
  const storages: StorageRetention[] = [];
  const all = [{ storage: o.primary, role: 'primary' as const }, ...(o.copies ?? []).map((storage) => ({ storage, role: 'copy' as const }))];
  const stopped = () => o.signal?.aborted === true;
  for (const { storage, role } of all) {
    if (stopped()) break;
    const where = storage.describe();
    const log = o.log.child({ storage: where });
    // Not knowing what is in use (Redis down) throws: nothing is deleted blind.
    const inUse = await o.inUse();
    let planned: Awaited<ReturnType<typeof planStorage>>;
    try {
      planned = await planStorage(storage, failedTests, inUse, now(), o.timezone);
    } catch (err) {
      // One storage that cannot be listed (an S3 outage) must not keep retention from the others.
      log.error({ err }, 'retention could not read a storage');
      storages.push({ storage: where, role, plan: null, error: toUserMessage(err), outcomes: [] });
      continue;
    }
    if (!o.dryRun) {
      try {
        planned = await keptConfirmed(storage, planned, o.readBack, log, () => planStorage(storage, failedTests, inUse, now(), o.timezone), o.signal);
      } catch (err) {
        log.error({ err }, 'retention could not read a storage');
        storages.push({ storage: where, role, plan: null, error: toUserMessage(err), outcomes: [] });
        continue;
      }
    }
    const { plan, states } = planned;
    const result: StorageRetention = { storage: where, role, plan, error: null, outcomes: [] };
    storages.push(result);
    if (o.dryRun) continue;
    for (const d of [...plan.delete]) {
      if (stopped()) break;
      const base = { storage: where, target: d.target, backupId: d.backupId, what: 'expired' as const, reason: d.reason };
      const current = await o.inUse().catch((err: unknown) => err as Error);
      if (current instanceof Error) {
        result.outcomes.push(
          await attempt(o, log, base, () =>
            Promise.reject(new BotError('internal', `Could not check that no restore is reading it (${current.message}); not deleted.`)),
          ),
        );
        continue;
      }
      if (current.restoreTests.has(d.backupId) || current.restores.has(d.backupId)) {
        // Started after the plan was made: the restore wins, retention tries again tomorrow.
        plan.delete.splice(plan.delete.indexOf(d), 1);
        plan.keep.push({ target: d.target, backupId: d.backupId, reason: `${d.reason}, kept: a restore of it started during retention` });
        continue;
      }
      result.outcomes.push(await attempt(o, log, base, () => storage.deleteBackup(d.target, d.backupId)));
    }
    for (const u of [...plan.cleanUnfinished]) {
      if (stopped()) break;
      const base = { storage: where, target: u.target, backupId: u.backupId, what: 'unfinished' as const, reason: u.reason };
      // A finished one (damaged, or half-deleted) is asked again right before, as an expired backup is, and claimed.
      const finished = states.get(u.backupId) !== 'no-manifest';
      const busy = finished ? await inUseNow(o, u) : null;
      const claim = finished && !busy && o.claimRepair ? await o.claimRepair(u.target, u.backupId).catch((e: unknown) => `${(e as Error).message}`) : null;
      const why = busy ?? (typeof claim === 'string' ? `a repair holds it (${claim})` : null);
      if (why) {
        plan.cleanUnfinished.splice(plan.cleanUnfinished.indexOf(u), 1);
        plan.keep.push({ target: u.target, backupId: u.backupId, reason: `expired (${u.reason}), kept: ${why}` });
        continue;
      }
      // A half-deleted backup still has its manifest, which discardUnfinished refuses to touch: finish the delete.
      const clean = finished ? () => storage.deleteBackup(u.target, u.backupId) : () => storage.discardUnfinished(u.target, u.backupId);
      result.outcomes.push(await attempt(o, log, base, clean).finally(() => (typeof claim === 'object' ? claim?.release() : undefined)));
    }
    if (stopped()) untried(result);
  }
  return { dryRun: o.dryRun, storages, ...(stopped() && !o.dryRun ? { canceled: true as const } : {}) };
}

/** Why a damaged or half-deleted backup must not be deleted now (a restore took it since the plan), or null. */
async function inUseNow(o: RetentionRunOptions, u: { target: string; backupId: string }): Promise<string | null> {
  const current = await o.inUse().catch((err: unknown) => err as Error);
  if (current instanceof Error) return `could not check that no restore is reading it (${current.message}); not deleted`;
  return current.restoreTests.has(u.backupId) || current.restores.has(u.backupId) ? 'a restore of it started during retention' : null;
}

/** A run stopped part-way: its plan keeps only the deletions tried, so no report calls the others done. */
function untried(result: StorageRetention): void {
  if (!result.plan) return;
  const tried = new Set(result.outcomes.map((x) => `${x.what}:${x.backupId}`));
  result.plan.delete = result.plan.delete.filter((d) => tried.has(`expired:${d.backupId}`));
  result.plan.cleanUnfinished = result.plan.cleanUnfinished.filter((u) => tried.has(`unfinished:${u.backupId}`));
}

async function attempt(o: RetentionRunOptions, log: Logger, base: Omit<RetentionOutcome, 'error'>, remove: () => Promise<void>): Promise<RetentionOutcome> {
  let outcome: RetentionOutcome;
  try {
    await remove();
    log.info({ backupId: base.backupId, what: base.what, reason: base.reason }, 'retention deleted a backup');
    outcome = { ...base, error: null };
  } catch (err) {
    if (err instanceof BotError && err.code === 'backup_not_found') {
      // Deleted by someone else since the listing (another retention run): the goal is reached.
      log.info({ backupId: base.backupId }, 'backup already gone');
      outcome = { ...base, error: null };
    } else {
      log.error({ err, backupId: base.backupId, what: base.what }, 'retention could not delete a backup');
      outcome = { ...base, error: toUserMessage(err) };
    }
  }
  await o.onOutcome?.(outcome).catch((err: unknown) => log.error({ err, backupId: base.backupId }, 'could not record the deletion'));
  return outcome;
}
