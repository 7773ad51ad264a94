import type { BackupKind, RetentionClass } from './manifest.ts';

const DAY = 24 * 3600 * 1000;

/** Days each class is kept (the seed's policy: 30 days daily, 7 days frequent, 90 days pre-migration). */
export const RETENTION_DAYS: Record<RetentionClass, number> = {
  manual: 30,
  daily: 30,
  frequent: 7,
  weekly: 14,
  'pre-migration': 90,
};

/**
 * A backup's class and deadline. `keepDays` comes from the policy that made it (a schedule's keepDays, a target's
 * preMigration.keepDays); without it the class's default applies. Fixed at backup time: a later policy change
 * never moves an existing backup's deadline.
 */
export function retentionFor(
  kind: BackupKind,
  startedAt: Date,
  retentionClass?: RetentionClass,
  keepDays?: number,
): { retentionClass: RetentionClass; retainUntil: Date } {
  const cls: RetentionClass = retentionClass ?? (kind === 'pre-migration' ? 'pre-migration' : kind === 'scheduled' ? 'daily' : 'manual');
  return { retentionClass: cls, retainUntil: new Date(startedAt.getTime() + (keepDays ?? RETENTION_DAYS[cls]) * DAY) };
}
