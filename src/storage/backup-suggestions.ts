import { formatDuration } from '../format.ts';
import type { Manifest } from './manifest.ts';
import type { Storage } from './types.ts';

/** What a backup id that names no stored backup most likely meant: findBackup's suggestions (catalog.ts). */

const ID_TIME = /-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-\d+)?$/;

/** When a backup id says its backup started (its worker's clock, UTC), in ms; null for what is not an id. */
export function timeOfBackupId(backupId: string): number | null {
  const m = ID_TIME.exec(backupId);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  // A time the calendar or the clock lacks (T999999Z, month 13) is no backup's time: not moved to another (QA).
  const back = new Date(t);
  return back.getUTCMonth() === mo - 1 && back.getUTCDate() === d && back.getUTCHours() === h && back.getUTCMinutes() === mi && back.getUTCSeconds() === se
    ? t
    : null;
}

/**
 * For an id whose target has no backup stored, a stored target its name is at most two edits from (`shopp`, `shpo`
 * for `shop`): "did you mean `shop-…`?" when that id exists, else that target's backup nearest in time. Null: none.
 */
export function mistypedTarget(stored: readonly Manifest[], target: string, backupId: string): { target: string; said: string } | null {
  const near = [...new Set(stored.map((m) => m.target))]
    .filter((t) => t !== target && editDistance(t, target) <= 2)
    .sort((a, b) => editDistance(a, target) - editDistance(b, target))[0];
  if (!near) return null;
  const meant = `${near}${backupId.slice(target.length)}`;
  const said = stored.some((m) => m.backupId === meant)
    ? `did you mean \`${meant}\` (target ${near})?`
    : `did you mean target ${near}?${nearestAmong(
        stored.filter((m) => m.target === near),
        meant,
      )}`;
  return { target: near, said };
}

/** Levenshtein distance: insertions, deletions and substitutions. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length] ?? 0;
}

/** " The nearest is `shop-…`, 2 s later." among the target's listed backups; '' when it has none. */
export async function nearestBackup(storage: Storage, target: string, backupId: string): Promise<string> {
  return nearestAmong(await storage.list(target), backupId);
}

/** nearestBackup among manifests already listed (one target's). */
function nearestAmong(listed: readonly Manifest[], backupId: string): string {
  const at = timeOfBackupId(backupId) ?? 0;
  let best: { id: string; delta: number } | null = null;
  for (const m of listed) {
    const delta = (timeOfBackupId(m.backupId) ?? 0) - at;
    if (!best || Math.abs(delta) < Math.abs(best.delta)) best = { id: m.backupId, delta };
  }
  if (!best) return '';
  const when = best.delta === 0 ? 'same second' : `${formatDuration(Math.abs(best.delta))} ${best.delta > 0 ? 'later' : 'earlier'}`;
  return ` The nearest is \`${best.id}\` (${when}).`;
}
