/**
 * The backup policy per environment, as data: the config file only states what differs from it. Retention
 * classes are the manifest's (`daily`, `frequent`, `weekly`); the deadline each backup carries is startedAt +
 * keepDays of the schedule that made it, so a later policy change never rewrites old backups' deadlines.
 */

export type Environment = 'production' | 'staging';
export type ScheduledRetentionClass = 'daily' | 'frequent' | 'weekly';
export type RestoreTestCadence = 'monthly' | 'quarterly';

export interface BackupSchedule {
  /** Stable id within a target: part of the scheduler id, so renaming it replaces the scheduler. */
  id: string;
  /** 5-field cron in the configured time zone. */
  cron: string;
  retentionClass: ScheduledRetentionClass;
  keepDays: number;
}

export interface RestoreTestSchedule {
  /** monthly: first Saturday of every month; quarterly: first Saturday of January, April, July and October. */
  cadence: RestoreTestCadence;
  /** HH:MM in the configured time zone. */
  at: string;
}

export interface EnvironmentPolicy {
  backups: readonly BackupSchedule[];
  restoreTest: RestoreTestSchedule | null;
  /** Pre-migration (staging: pre-deployment) backups made with `/backup pre-migration`. */
  preMigration: { keepDays: number };
}

export const DEFAULT_POLICY: Readonly<Record<Environment, Readonly<EnvironmentPolicy>>> = {
  production: {
    backups: [
      { id: 'daily', cron: '0 2 * * *', retentionClass: 'daily', keepDays: 30 },
      // A full logical backup of its own class: pg_dump has no incremental mode (the seed's "incremental" is not a thing).
      // Cron rather than BullMQ `every`: `every` counts from the moment the scheduler was first upserted and
      // ignores the time zone, so neither the config nor `/backup status` could say when it runs.
      { id: 'frequent', cron: '0 */6 * * *', retentionClass: 'frequent', keepDays: 7 },
    ],
    restoreTest: { cadence: 'monthly', at: '03:00' },
    preMigration: { keepDays: 90 },
  },
  staging: {
    backups: [{ id: 'weekly', cron: '0 2 * * 0', retentionClass: 'weekly', keepDays: 14 }],
    restoreTest: { cadence: 'quarterly', at: '03:00' },
    preMigration: { keepDays: 30 },
  },
};

/** One target's effective schedules: the defaults of its environment with the file's overrides applied. */
export interface TargetPolicy {
  name: string;
  environment: Environment;
  backups: BackupSchedule[];
  restoreTest: RestoreTestSchedule | null;
  preMigration: { keepDays: number };
  /** Point-in-time recovery's base backups (a target with a `pitr` section): 5-field cron; absent or null: none. */
  baseBackup?: { cron: string } | null;
}

/** A target's schedule overrides as the config file gives them (config-schema.ts's ScheduleTarget fits this shape). */
export interface PolicyOverrides {
  name: string;
  environment: Environment;
  schedules?:
    | {
        backups?:
          | Record<
              string,
              { enabled?: boolean | undefined; cron?: string | undefined; retentionClass?: ScheduledRetentionClass | undefined; keepDays?: number | undefined }
            >
          | undefined;
        restoreTest?: { enabled?: boolean | undefined; cadence?: RestoreTestCadence | undefined; at?: string | undefined } | undefined;
        preMigration?: { keepDays: number } | undefined;
      }
    | undefined;
  pitr?: { baseBackup?: { enabled: boolean; cron: string } | undefined } | undefined;
}

/**
 * Overrides merge by schedule id: a known id changes only the fields given, `enabled: false` removes it, and an
 * unknown id adds a schedule (the schema has already checked it names cron, retentionClass and keepDays).
 */
export function resolvePolicy(target: PolicyOverrides): TargetPolicy {
  const base = DEFAULT_POLICY[target.environment];
  const overrides = target.schedules?.backups ?? {};
  const backups: BackupSchedule[] = [];
  for (const def of base.backups) {
    const o = overrides[def.id];
    if (o?.enabled === false) continue;
    backups.push({
      id: def.id,
      cron: o?.cron ?? def.cron,
      retentionClass: o?.retentionClass ?? def.retentionClass,
      keepDays: o?.keepDays ?? def.keepDays,
    });
  }
  for (const [id, o] of Object.entries(overrides)) {
    if (base.backups.some((d) => d.id === id) || o.enabled === false) continue;
    if (o.cron === undefined || o.retentionClass === undefined || o.keepDays === undefined) {
      throw new Error(`schedule ${target.name}.${id} is new and needs cron, retentionClass and keepDays`);
    }
    backups.push({ id, cron: o.cron, retentionClass: o.retentionClass, keepDays: o.keepDays });
  }
  const rt = target.schedules?.restoreTest;
  const restoreTest =
    rt?.enabled === false
      ? null
      : base.restoreTest || rt?.cadence
        ? { cadence: rt?.cadence ?? base.restoreTest?.cadence ?? 'monthly', at: rt?.at ?? base.restoreTest?.at ?? '03:00' }
        : null;
  return {
    name: target.name,
    environment: target.environment,
    backups,
    restoreTest,
    preMigration: { keepDays: target.schedules?.preMigration?.keepDays ?? base.preMigration.keepDays },
    ...(target.pitr?.baseBackup?.enabled ? { baseBackup: { cron: target.pitr.baseBackup.cron } } : {}),
  };
}
