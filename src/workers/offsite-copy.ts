import type { Logger } from '../logger.ts';
import type { Escalation } from '../notifications/escalation.ts';
import { copyBackup, copyToAll, type Manifest, type Storage } from '../storage/index.ts';
import { toUserMessage } from '../errors.ts';

/** Backups an earlier copy missed, copied after each backup's own (more wait for the next backup)... */
export const CATCH_UP_PER_RUN = 3;
/** ...within this long: the backup job holds its target's gate meanwhile, and its verdict waits (second reader). */
export const CATCH_UP_BUDGET_MS = 10 * 60_000;

/**
 * The target's good backups on the primary that `to` lacks, newest first, those past their deadline left out
 * (retention deletes them); apart, those the copy holds but its listing left out as damaged or cut short (its
 * scrub mends them from the primary: not copied again here, still not off-site). Why not, when either side cannot
 * be listed: then nobody can tell, and nothing is called off-site.
 */
async function missingFrom(from: Storage, to: Storage, target: string, now: number): Promise<{ missing: Manifest[]; broken: string[] } | string> {
  const listed = await Promise.all([from.list(target), to.list(target)]).catch((err: unknown) => toUserMessage(err));
  if (typeof listed === 'string') return listed;
  const there = new Set(listed[1].map((m) => m.backupId));
  const broken = new Set((to.damaged?.(target) ?? []).map((d) => d.backupId));
  const wanted = listed[0]
    .filter((m) => !there.has(m.backupId) && (m.retainUntil === null || Date.parse(m.retainUntil) > now))
    .sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt));
  return { missing: wanted.filter((m) => !broken.has(m.backupId)), broken: wanted.filter((m) => broken.has(m.backupId)).map((m) => m.backupId) };
}

/**
 * Copies a finished backup to every copy target, then the backups of its target an earlier copy missed (up to
 * CATCH_UP_PER_RUN a run). A failed copy does not unmake the backup: it is said in the thread and pages
 * `offsite-copy` (warning). Resolved only when this copy worked and no backup of the target within its deadline is
 * missing from any copy (QA: a copy that failed was never retried, the next backup's copy resolved the page, and
 * nothing showed the backup missing off-site).
 */
export async function copyOffsite(
  deps: { storage: Storage; copies?: Storage[] | undefined; escalation: Escalation },
  target: string,
  manifest: Manifest,
  log: Logger,
  signal?: AbortSignal,
  now: () => number = Date.now,
): Promise<string | null> {
  const copies = deps.copies ?? [];
  if (copies.length === 0) return null;
  const outcomes = await copyToAll(deps.storage, copies, manifest, { log, ...(signal ? { signal } : {}) });
  const failed = outcomes.filter((o) => !o.ok).map((o) => (o.ok ? '' : o.error));
  const lines = outcomes.map((o) => (o.ok ? `:white_check_mark: copied to ${o.destination}` : `:warning: copy to ${o.destination} failed: ${o.error}`));
  const behind: string[] = [];
  const started = now();
  for (const [i, to] of copies.entries()) {
    if (!outcomes[i]?.ok || signal?.aborted) continue;
    const found = await missingFrom(deps.storage, to, target, now());
    if (typeof found === 'string') {
      // Not known is not "every backup is off-site" (second reader: a listing outage resolved the page).
      lines.push(`:warning: Whether every backup of ${target} is in ${to.describe()} could not be checked: ${found}`);
      behind.push(`(unchecked: ${to.describe()})`);
      continue;
    }
    if (found.broken.length)
      lines.push(`:warning: In ${to.describe()} but damaged or cut short there (its scrub rewrites them from here): ${found.broken.join(', ')}`);
    behind.push(...found.broken);
    for (const [n, m] of found.missing.entries()) {
      if (n >= CATCH_UP_PER_RUN || signal?.aborted || now() - started > CATCH_UP_BUDGET_MS) {
        behind.push(m.backupId);
        continue;
      }
      try {
        await copyBackup(deps.storage, to, m, { log, ...(signal ? { signal } : {}) });
        lines.push(`:white_check_mark: also copied ${m.backupId} to ${to.describe()}, which an earlier copy missed`);
      } catch (err) {
        lines.push(`:warning: ${m.backupId}, which an earlier copy missed, could not be copied to ${to.describe()} either: ${toUserMessage(err)}`);
        behind.push(m.backupId);
      }
    }
  }
  if (behind.length > 0) lines.push(`:warning: Not yet in every copy (the next backups copy them): ${behind.join(', ')}`);
  const page =
    failed.length || behind.length
      ? await deps.escalation
          .failed(target, 'offsite-copy', {
            summary: failed.length
              ? `Off-site copy of ${manifest.backupId} failed: ${failed[0]}`
              : `${behind.length} backup(s) of ${target} are not in every off-site copy yet: ${behind.slice(0, 5).join(', ')}`,
            severity: 'warning',
            details: { backupId: manifest.backupId, notCopied: behind },
          })
          .catch(() => null)
      : await deps.escalation
          .passed(target, 'offsite-copy', { summary: `Off-site copy of ${manifest.backupId} worked; every backup of ${target} is off-site` })
          .catch(() => null);
  return [...lines, ...(page ? [page] : [])].join('\n');
}
