import { walOffsiteCondition } from './offsite-condition.ts';
import { formatTime } from '../format.ts';
import { parseLsn } from '../postgres/pitr/lsn.ts';
import { noGoodBackup, sizeCondition, slowCondition, staleCondition } from './backup-conditions.ts';
import { damagedCondition } from './damaged-condition.ts';
import { diskCondition } from './disk-condition.ts';
import { rpoCondition } from './rpo-condition.ts';
import { walConditions } from './wal-conditions.ts';
import { baseBackupCondition } from './base-backup-condition.ts';
import { dataDriftCondition, withGrowth } from './drift-condition.ts';
import {
  type BackupRunSummary,
  type ConditionResult,
  DEFAULT_THRESHOLDS,
  type HealthCondition,
  type HealthInput,
  type HealthThresholds,
  type RestoreTestSummary,
} from './types.ts';

/** Merges partial thresholds over the defaults; `undefined` keeps the default, so a config may pass unset keys. */
export function resolveThresholds(partial: Partial<HealthThresholds> | undefined): HealthThresholds {
  const out: HealthThresholds = { ...DEFAULT_THRESHOLDS };
  for (const [key, value] of Object.entries(partial ?? {})) {
    if (value !== undefined) Object.assign(out, { [key]: value });
  }
  return out;
}

function backupFailingCondition(target: string, run: BackupRunSummary | null): ConditionResult {
  const base = { condition: 'backup-failing', severity: 'error' } as const;
  if (!run) return { ...base, status: 'ok', unjudged: true, summary: `No backup run of ${target} recorded yet`, evidence: 'no backup run recorded' };
  // A CLI backup run with the bot's Redis is recorded as `cli:<host>` (cli/backup-lock.ts).
  const job = run.jobId?.startsWith('cli:') ? ` (\`pg-backup-bot backup\` on ${run.jobId.slice(4)})` : run.jobId ? ` (job ${run.jobId})` : '';
  if (run.ok) {
    const evidence = `last run succeeded at ${formatTime(run.at)}${job}`;
    return { ...base, status: 'ok', summary: `The last backup of ${target} succeeded`, evidence };
  }
  const evidence = `last run failed at ${formatTime(run.at)}${job}: ${run.reason ?? 'no reason recorded'}`;
  return { ...base, status: 'failing', summary: `The last backup of ${target} failed: ${run.reason ?? 'no reason recorded'}`, evidence };
}

function restoreTestFailingCondition(target: string, test: RestoreTestSummary | null): ConditionResult {
  const base = { condition: 'restore-test-failing', severity: 'critical' } as const;
  // Never having tested is not reported here: the spec pages only on a test that ran and failed.
  if (!test) return { ...base, status: 'ok', unjudged: true, summary: `No restore test of ${target} recorded yet`, evidence: 'no restore test recorded' };
  const when = `${test.backupId} at ${formatTime(test.at)}`;
  if (test.passed) return { ...base, status: 'ok', summary: `The last restore test of ${target} passed`, evidence: `restore test of ${when} passed` };
  const shown = test.problems.slice(0, 3).join('; ') || 'no problem recorded';
  const more = test.problems.length > 3 ? ` (and ${test.problems.length - 3} more)` : '';
  return {
    ...base,
    status: 'failing',
    summary: `The last restore test of ${target} failed: ${test.problems[0] ?? 'no problem recorded'}`,
    evidence: `restore test of ${when} failed: ${shown}${more}`,
  };
}

/**
 * `pitr-test-failing` (critical, paged by the restore-test worker as `pitr-restore-test`): the last PITR restore test
 * failed or could not run. Shown here so `/backup health`, `check` and /metrics do not call the target healthy while
 * that page is open; never having tested is not a failure, as for the logical restore test.
 */
function pitrTestCondition(target: string, run: BackupRunSummary | null): ConditionResult {
  const base = { condition: 'pitr-test-failing', severity: 'critical' } as const;
  if (!run)
    return { ...base, status: 'ok', unjudged: true, summary: `No PITR restore test of ${target} recorded yet`, evidence: 'no PITR restore test recorded' };
  const job = run.jobId ? ` (job ${run.jobId})` : '';
  if (run.ok) return { ...base, status: 'ok', summary: `The last PITR restore test of ${target} passed`, evidence: `passed at ${formatTime(run.at)}${job}` };
  const reason = run.reason ?? 'no reason recorded';
  return {
    ...base,
    status: 'failing',
    summary: `The last PITR restore test of ${target} failed: ${reason}`,
    evidence: `failed at ${formatTime(run.at)}${job}: ${reason}; \`/restore-test pitr ${target}\` runs it again`,
  };
}

function unencryptedCondition(
  target: string,
  encrypted: boolean | null | undefined,
  newest: HealthInput['backups'][number] | undefined,
  damaged: number,
): ConditionResult {
  const base = { condition: 'unencrypted', severity: 'warning' } as const;
  const id = newest?.backupId ?? 'the newest backup';
  if (encrypted === false) {
    const evidence = `newest backup ${id} is stored unencrypted; set BACKUP_ENCRYPTION_RECIPIENT so the next one is encrypted`;
    return { ...base, status: 'failing', summary: `The newest backup of ${target} (production) is not encrypted`, evidence };
  }
  if (encrypted === true)
    return { ...base, status: 'ok', summary: `The newest backup of ${target} is encrypted`, evidence: `newest backup ${id} is encrypted with age` };
  return {
    ...base,
    status: 'ok',
    ...(newest ? {} : { unjudged: true as const }),
    summary: `Encryption of ${target} not checked`,
    evidence: newest ? 'encryption not required for this target' : noGoodBackup(damaged),
  };
}

/** A WAL stream restarting is normal for a few minutes (the server restarted, a deploy); longer, WAL is at risk. */
const WAL_GRACE_MS = 5 * 60_000;

/**
 * The WAL stream of a target with point-in-time recovery: down for longer than the grace, or never started by any
 * worker, is critical — every minute of it is data a recovery cannot reach, and the slot fills the server's disk.
 */
function walStreamCondition(target: string, now: Date, s: NonNullable<HealthInput['wal']>['state']): ConditionResult {
  const base = { condition: 'wal-stream', severity: 'critical' } as const;
  if (!s) {
    const evidence = `no worker has started the WAL stream of ${target}: is a worker running, with this target's pitr section?`;
    return { ...base, status: 'failing', summary: `The WAL stream of ${target} is not running`, evidence };
  }
  const last = s.lastArchived ? `; newest whole segment archived ${s.lastArchived}` : '; nothing archived yet';
  if (s.receiver === 'up') {
    // The process lives, but is it receiving? The slot's flushed position standing still while the server moves on.
    // From the last measurement, not now (a sampler that fails keeps its last figures: the RPO condition says that),
    // and from the receiver's own start at the earliest (the slot stood still while it was down).
    const moved = s.flushedMovedAt ? Math.max(Date.parse(s.flushedMovedAt), Date.parse(s.since)) : Number.NaN;
    const still = s.rpoError || !s.rpoMeasuredAt || !s.currentLsn || !s.flushedLsn ? 0 : Date.parse(s.rpoMeasuredAt) - moved;
    if (still >= WAL_GRACE_MS && parseLsn(s.currentLsn as string) > parseLsn(s.flushedLsn as string)) {
      const evidence =
        `pg_receivewal runs (since ${formatTime(s.since)}) but has received nothing since ${formatTime(s.flushedMovedAt as string)}: ` +
        `the server is at ${s.currentLsn}, the slot at ${s.flushedLsn}${last}. A frozen process or a stream the network dropped without ` +
        `closing it: restart the worker (the slot keeps the WAL meanwhile)`;
      return { ...base, status: 'failing', summary: `The WAL stream of ${target} has stalled`, evidence };
    }
    return { ...base, status: 'ok', summary: `The WAL stream of ${target} is up`, evidence: `streaming since ${formatTime(s.since)}${last}` };
  }
  const downMs = now.getTime() - Date.parse(s.since);
  const evidence = `${s.receiver} since ${formatTime(s.since)}${s.error ? `: ${s.error}` : ''}${last}`;
  if (s.receiver === 'down' && downMs < WAL_GRACE_MS) {
    return {
      ...base,
      status: 'ok',
      unjudged: true,
      summary: `The WAL stream of ${target} is restarting`,
      evidence: `${evidence} (restarting, within the ${WAL_GRACE_MS / 60_000}-minute grace)`,
    };
  }
  return { ...base, status: 'failing', summary: `The WAL stream of ${target} is down`, evidence };
}

/**
 * Every health condition of one target, in HEALTH_CONDITIONS order, ok or failing. Pure: the caller gathers
 * manifests, jobs, disk figures and the clock, so the verdicts are testable without I/O.
 */
export function evaluateHealth(input: HealthInput): ConditionResult[] {
  const t = resolveThresholds(input.thresholds);
  const newestFirst = [...input.backups].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt));
  // Damaged backups only: WAL lost from the archive is no backup (`WAL <segment>`, health/collect.ts).
  const damaged = input.damaged?.filter((d) => !d.wal).length ?? 0;
  const intact = input.damaged?.filter((d) => d.archiveIntact).length ?? 0;
  const results = [
    staleCondition(input.target, input.now, newestFirst, t, input.firstBackupDueAt, damaged, intact, input.running),
    damagedCondition(input.target, input.damaged ?? [], newestFirst.length),
    withGrowth(sizeCondition(input.target, newestFirst, t, damaged), newestFirst, t),
    dataDriftCondition(input.target, newestFirst, t, input.driftAck),
    slowCondition(input.target, input.now, newestFirst, input.running, t, damaged),
    diskCondition(input.target, input.disk, t, newestFirst, input.lastBackupRun, input.baseBackup?.newest),
    backupFailingCondition(input.target, input.lastBackupRun),
    restoreTestFailingCondition(input.target, input.lastRestoreTest),
    unencryptedCondition(input.target, input.encrypted, newestFirst[0], damaged),
    ...(input.wal ? [walStreamCondition(input.target, input.now, input.wal.state)] : []),
    ...walConditions(input.target, input.walHealth),
    ...(input.wal ? [walOffsiteCondition(input.target, input.now, input.wal.state)].filter((c): c is ConditionResult => c !== null) : []),
    ...(input.baseBackup ? [baseBackupCondition(input.target, input.now, input.baseBackup)] : []),
    ...(input.pitrTest !== undefined ? [pitrTestCondition(input.target, input.pitrTest)] : []),
    ...(input.wal ? [rpoCondition(input.target, input.now, input.wal.state)] : []),
  ];
  const slotMissing = input.walHealth?.slot.exists === false;
  return walStarting(input) ? results.map((r) => startingGrace(r, input.wal?.firstSeen as Date, slotMissing)) : results;
}

/**
 * A target whose WAL stream no worker has started yet, first seen less than the grace ago (a fresh install, a
 * target just added, a Redis that lost its data): the worker is about to start the stream and create the slot.
 * Judged at once, its stream, missing slot and unmeasured RPO paged critical and cleared a second later.
 */
const walStarting = (input: HealthInput) =>
  !!input.wal && input.wal.state === null && !!input.wal.firstSeen && input.now.getTime() - input.wal.firstSeen.getTime() < WAL_GRACE_MS;

/** The stream, the RPO and a slot not created yet wait; anything else about the slot (too much WAL held) does not. */
function startingGrace(r: ConditionResult, firstSeen: Date, slotMissing: boolean): ConditionResult {
  const waiting = r.condition === 'wal-stream' || r.condition === 'rpo' || (r.condition === 'wal-slot' && slotMissing);
  if (!waiting || r.status !== 'failing') return r;
  const grace = `not judged yet: no worker has started the WAL stream, and the target was first seen ${formatTime(firstSeen)}, within the ${WAL_GRACE_MS / 60_000}-minute start-up grace`;
  return { ...r, status: 'ok', unjudged: true, summary: `${r.summary} (starting)`, evidence: `${r.evidence} (${grace})` };
}

/**
 * The condition name to page under. The backup and restore-test workers already page as `backup` and
 * `restore-test`; a health job paging the same failure under another key would open a second incident.
 */
export function pagerCondition(condition: HealthCondition): string {
  if (condition === 'backup-failing') return 'backup';
  if (condition === 'restore-test-failing') return 'restore-test';
  if (condition === 'pitr-test-failing') return 'pitr-restore-test';
  return condition;
}
