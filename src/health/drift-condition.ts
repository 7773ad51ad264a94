import { capped, dataDrift, growthText, lossText, previousBackup, restoreCommand, type DriftThresholds } from '../drift/index.ts';
import { formatTime } from '../format.ts';
import type { Manifest } from '../storage/index.ts';
import { type ConditionResult, DEFAULT_THRESHOLDS, type DriftAck, type HealthThresholds } from './types.ts';

/** Drift read from the backups themselves: the newest against the one before it (drift/data-drift.ts). */

const driftThresholds = (t: HealthThresholds): DriftThresholds => ({ lossRatio: t.driftLossRatio, minRows: t.driftMinRows, growthFactor: t.driftGrowthFactor });

/** The drift thresholds the config sets (health thresholds `drift*`), for the backup thread and `/backup diff`. */
export const configuredDrift = (p: Partial<HealthThresholds> | undefined): DriftThresholds => ({
  lossRatio: p?.driftLossRatio ?? DEFAULT_THRESHOLDS.driftLossRatio,
  minRows: p?.driftMinRows ?? DEFAULT_THRESHOLDS.driftMinRows,
  growthFactor: p?.driftGrowthFactor ?? DEFAULT_THRESHOLDS.driftGrowthFactor,
});

/** Tables listed in one condition's evidence; the rest are counted (the metric and `/backup diff` have them all). */
const LISTED = 10;

/**
 * data-drift: a table of the newest backup that lost more than the configured share of its rows (and at least the
 * configured number), became empty or disappeared since the backup before it. Each table comes with the command that
 * brings it back from the earlier backup. A warning posted once per episode (one newer backup), unless the config makes
 * it page; it clears when a newer backup no longer shows it, or when an operator acknowledges that backup's drift. A
 * newer backup that shows losses again is a new episode, posted again even though the condition never cleared.
 */
export function dataDriftCondition(target: string, newestFirst: Manifest[], t: HealthThresholds, ack?: DriftAck | null): ConditionResult {
  const base = { condition: 'data-drift', severity: t.driftPages ? 'error' : 'warning', ...(t.driftPages ? {} : { unpaged: true as const }) } as const;
  const [newest, ...older] = newestFirst;
  const earlier = newest ? previousBackup(older, newest) : undefined;
  if (!newest || !earlier) {
    return {
      ...base,
      status: 'ok',
      unjudged: true,
      summary: `Data drift of ${target}: fewer than two backups to compare`,
      evidence: 'fewer than two backups to compare',
      value: 0,
    };
  }
  const pair = `${earlier.backupId} → ${newest.backupId}`;
  const d = dataDrift(earlier, newest, driftThresholds(t));
  if (!d.comparable)
    return { ...base, status: 'ok', unjudged: true, summary: `Data drift of ${target} not judged: ${d.reason}`, evidence: `${pair}: ${d.reason}`, value: 0 };
  const n = d.lost.length;
  if (n === 0)
    return { ...base, status: 'ok', summary: `No table of ${target} lost rows`, evidence: `no table lost rows since the backup before (${pair})`, value: 0 };
  const tables = `${n} ${n === 1 ? 'table' : 'tables'}`;
  const lines = capped(
    d.lost.map((l) => `${lossText(l)}, restore with \`${restoreCommand(earlier.backupId, l)}\``),
    LISTED,
  );
  const evidence = `${tables} lost rows between ${earlier.backupId} and ${newest.backupId}: ${lines.join('; ')}`;
  if (ack?.backupId === newest.backupId) {
    const by = `acknowledged by ${ack.by} at ${formatTime(ack.at)}`;
    return { ...base, status: 'ok', summary: `Data drift of ${target} ${by}`, evidence: `${tables} lost rows (${pair}), ${by}`, value: n };
  }
  return {
    ...base,
    status: 'failing',
    summary: `Data drift in ${target}: ${tables} lost rows since ${earlier.backupId} (${d.lost
      .map((l) => `${l.schema}.${l.table}`)
      .join(', ')
      .slice(0, 300)})`,
    evidence,
    value: n,
    acknowledge: newest.backupId,
    // Each backup that shows losses is news of its own: the same losses are not shown twice (the backup after this one
    // compares with this one), so a failure about a newer backup is another table's loss.
    episode: newest.backupId,
  };
}

/**
 * Growth is drift too: the size condition's evidence names the tables that grew more than the configured factor since
 * the backup before the newest, so "backup 3× bigger" says which table did it.
 */
export function withGrowth(size: ConditionResult, newestFirst: Manifest[], t: HealthThresholds): ConditionResult {
  const [newest, ...older] = newestFirst;
  const earlier = newest ? previousBackup(older, newest) : undefined;
  if (!newest || !earlier) return size;
  const d = dataDrift(earlier, newest, driftThresholds(t));
  if (!d.comparable || d.grown.length === 0) return size;
  const grew = `; grew since ${earlier.backupId}: ${capped(d.grown.map(growthText), 5).join(', ')}`;
  return { ...size, summary: `${size.summary}${grew}`, evidence: `${size.evidence}${grew}` };
}
