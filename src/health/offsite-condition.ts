import { formatTime } from '../format.ts';
import type { StoredWalState } from '../jobs/wal-state.ts';
import type { ConditionResult } from './types.ts';

type OffsiteField = 'offsiteWhere' | 'offsiteNewest' | 'offsitePending' | 'offsiteCheckedAt' | 'offsiteError' | 'offsiteFailingSince' | 'offsiteRole';

/** Copies that fail for this long (S3 down, credentials expired) are a warning: a lost worker disk would take that WAL with it. */
export const OFFSITE_GRACE_MS = 15 * 60_000;

/**
 * `wal-offsite`, warning: the WAL archive's copy in S3 (S3_MODE=copy) falling behind because copies fail. The archive
 * on the worker's disk is complete (the other WAL conditions judge it); what is at risk is a restore on a new server
 * after that disk is lost, which reaches only the newest segment copied. Judged only where a copy is configured.
 */
export function walOffsiteCondition(target: string, now: Date, s: Pick<StoredWalState, OffsiteField> | null): ConditionResult | null {
  if (!s?.offsiteWhere) return null;
  if (s.offsiteRole === 'primary') return spoolCondition(target, now, s);
  const base = { condition: 'wal-offsite', severity: 'warning' } as const;
  const pending = Number(s.offsitePending ?? 0);
  const newest = s.offsiteNewest ? `newest segment there ${s.offsiteNewest}` : 'no segment there yet';
  const behind = pending > 0 ? `; ${pending} archived segment${pending === 1 ? '' : 's'} not copied yet` : '';
  const checked = s.offsiteCheckedAt ? ` (checked ${formatTime(s.offsiteCheckedAt)})` : '';
  const evidence = `copied to ${s.offsiteWhere}: ${newest}${behind}${checked}`;
  const failingMs = s.offsiteFailingSince ? now.getTime() - Date.parse(s.offsiteFailingSince) : 0;
  if (s.offsiteError && failingMs >= OFFSITE_GRACE_MS) {
    return {
      ...base,
      status: 'failing',
      summary: `The WAL archive of ${target} is not being copied off-site`,
      evidence: `copies to ${s.offsiteWhere} fail since ${formatTime(s.offsiteFailingSince ?? '')}: ${s.offsiteError}. ${evidence}. A restore on a new server reaches only what is there`,
      value: pending,
    };
  }
  const retrying = s.offsiteError ? `; the last copy failed (${s.offsiteError}), retrying` : '';
  return { ...base, status: 'ok', summary: `The WAL archive of ${target} is copied off-site`, evidence: `${evidence}${retrying}`, value: pending };
}

/** Uploads from the spool that fail for this long (S3_MODE=primary) page: the archive itself has stopped. */
export const SPOOL_GRACE_MS = 5 * 60_000;

/**
 * `wal-offsite` when S3 is the primary store: the spool on the worker's disk not reaching the bucket. Nothing in the
 * spool counts as archived — the window, `/backup list` and the RPO stop at the newest segment in the bucket — so a
 * failing upload is the archive stopping, paged (error) after five minutes, not a copy falling behind.
 */
function spoolCondition(target: string, now: Date, s: Pick<StoredWalState, OffsiteField>): ConditionResult {
  const base = { condition: 'wal-offsite', severity: 'error' } as const;
  const pending = Number(s.offsitePending ?? 0);
  const newest = s.offsiteNewest ? `newest segment there ${s.offsiteNewest}` : 'no segment there yet';
  const spooled = pending > 0 ? `; ${pending} segment${pending === 1 ? '' : 's'} on the worker's disk, not archived until uploaded` : '';
  const checked = s.offsiteCheckedAt ? ` (checked ${formatTime(s.offsiteCheckedAt)})` : '';
  const evidence = `archived in ${s.offsiteWhere} (the primary store): ${newest}${spooled}${checked}`;
  const failingMs = s.offsiteFailingSince ? now.getTime() - Date.parse(s.offsiteFailingSince) : 0;
  if (s.offsiteError && failingMs >= SPOOL_GRACE_MS) {
    return {
      ...base,
      status: 'failing',
      summary: `The WAL archive of ${target} is not reaching S3, its primary store`,
      evidence: `uploads to ${s.offsiteWhere} fail since ${formatTime(s.offsiteFailingSince ?? '')}: ${s.offsiteError}. ${evidence}. The recoverable window and the RPO stop at what is there; the spool is kept until it is uploaded`,
      value: pending,
    };
  }
  const retrying = s.offsiteError ? `; the last upload failed (${s.offsiteError}), retrying` : '';
  return { ...base, status: 'ok', summary: `The WAL archive of ${target} reaches S3`, evidence: `${evidence}${retrying}`, value: pending };
}
