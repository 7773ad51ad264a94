import type { Manifest } from '../storage/index.ts';

/** Rows that went or came between two backups, read from their manifests' exact counts (taken in each dump's snapshot). */

export interface DriftThresholds {
  /** A table that lost more than this share of its rows (0–1) is in drift… */
  lossRatio: number;
  /** …when it lost at least this many; and a table that grew needs at least this many more rows to be named. */
  minRows: number;
  /** A table with more than this many times its rows is named in the size-anomaly evidence. */
  growthFactor: number;
}

export const DEFAULT_DRIFT: DriftThresholds = { lossRatio: 0.5, minRows: 1000, growthFactor: 10 };

export interface TableLoss {
  schema: string;
  table: string;
  before: number;
  /** null: the table is gone. */
  after: number | null;
  kind: 'dropped' | 'emptied' | 'shrunk';
}

export interface TableGrowth {
  schema: string;
  table: string;
  before: number;
  after: number;
}

export type DataDrift =
  | { comparable: true; lost: TableLoss[]; grown: TableGrowth[] }
  /** Counts that do not describe the same thing are never compared; `reason` says why. */
  | { comparable: false; reason: string };

const scopeKey = (m: Manifest) => JSON.stringify(m.scope ?? { schemas: [], excludeTables: [] });
const describeScope = (m: Manifest) =>
  m.scope ? [...m.scope.schemas.map((s) => `schemas ${s}`), ...m.scope.excludeTables.map((t) => `without ${t}`)].join(', ') : 'the whole database';

/**
 * Why two backups' counts cannot be compared, or null when they can: another database, or another scope (the target's
 * `schemas` or `excludeTables` changed in the config, so a table "gone" may only be out of scope).
 */
export function incomparable(before: Manifest, after: Manifest): string | null {
  if (before.target !== after.target) return `${before.backupId} and ${after.backupId} are backups of different targets`;
  if (before.database.name !== after.database.name)
    return `${before.backupId} is of database ${before.database.name}, ${after.backupId} of ${after.database.name}`;
  if (scopeKey(before) !== scopeKey(after))
    return `their scopes differ (${before.backupId}: ${describeScope(before)}; ${after.backupId}: ${describeScope(after)}), so their counts are not compared`;
  return null;
}

const key = (t: { schema: string; table: string }) => JSON.stringify([t.schema, t.table]);

/**
 * Tables that lost rows from `before` to `after`: gone, emptied, or shrunk by more than `lossRatio` and at least
 * `minRows`; and tables that grew more than `growthFactor` times (by at least `minRows`). Tables that were empty
 * before cannot lose anything; tables new in `after` are schema drift, not growth.
 */
export function dataDrift(before: Manifest, after: Manifest, t: DriftThresholds = DEFAULT_DRIFT): DataDrift {
  const reason = incomparable(before, after);
  if (reason) return { comparable: false, reason };
  const now = new Map(after.verification.tables.map((x) => [key(x), x.rows]));
  const lost: TableLoss[] = [];
  const grown: TableGrowth[] = [];
  for (const b of before.verification.tables) {
    const a = now.get(key(b));
    const base = { schema: b.schema, table: b.table, before: b.rows };
    if (a === undefined) {
      if (b.rows > 0) lost.push({ ...base, after: null, kind: 'dropped' });
    } else if (b.rows > 0 && a === 0) {
      lost.push({ ...base, after: 0, kind: 'emptied' });
    } else if (b.rows - a > t.lossRatio * b.rows && b.rows - a >= t.minRows) {
      lost.push({ ...base, after: a, kind: 'shrunk' });
    } else if (a - b.rows >= t.minRows && (b.rows === 0 || a / b.rows > t.growthFactor)) {
      grown.push({ ...base, after: a });
    }
  }
  // The most rows lost (or gained) first: the one to look at is at the top.
  lost.sort((x, y) => y.before - (y.after ?? 0) - (x.before - (x.after ?? 0)));
  grown.sort((x, y) => y.after - y.before - (x.after - x.before));
  return { comparable: true, lost, grown };
}

/** The newest backup that started before `m`: the one a backup is compared with (any class: scheduled, manual, pre-migration). */
export function previousBackup(backups: readonly Manifest[], m: Manifest, accept: (b: Manifest) => boolean = () => true): Manifest | undefined {
  const at = Date.parse(m.startedAt);
  let best: Manifest | undefined;
  for (const b of backups) {
    if (b.backupId === m.backupId || b.target !== m.target || Date.parse(b.startedAt) >= at || !accept(b)) continue;
    if (!best || Date.parse(b.startedAt) > Date.parse(best.startedAt)) best = b;
  }
  return best;
}
