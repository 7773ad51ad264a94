import type { Logger } from '../logger.ts';
import type { Escalation } from '../notifications/escalation.ts';
import { copyToAll, type Manifest, type Storage } from '../storage/index.ts';

/**
 * Copies a finished backup to every copy target. A failed copy does not unmake the backup: it is said in the
 * thread and pages `offsite-copy` (warning), resolved by the next copy that works.
 */
export async function copyOffsite(
  deps: { storage: Storage; copies?: Storage[] | undefined; escalation: Escalation },
  target: string,
  manifest: Manifest,
  log: Logger,
  signal?: AbortSignal,
): Promise<string | null> {
  const copies = deps.copies ?? [];
  if (copies.length === 0) return null;
  const outcomes = await copyToAll(deps.storage, copies, manifest, { log, ...(signal ? { signal } : {}) });
  const failed = outcomes.filter((o) => !o.ok);
  const lines = outcomes.map((o) => (o.ok ? `:white_check_mark: copied to ${o.destination}` : `:warning: copy to ${o.destination} failed: ${o.error}`));
  const page = failed.length
    ? await deps.escalation
        .failed(target, 'offsite-copy', {
          summary: `Off-site copy of ${manifest.backupId} failed: ${failed[0]?.ok === false ? failed[0].error : ''}`,
          severity: 'warning',
          details: { backupId: manifest.backupId },
        })
        .catch(() => null)
    : await deps.escalation.passed(target, 'offsite-copy', { summary: `Off-site copy of ${manifest.backupId} worked` }).catch(() => null);
  return [...lines, ...(page ? [page] : [])].join('\n');
}
