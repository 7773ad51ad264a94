export {
  CronPattern,
  SCHEDULE_SECTION_SHAPE,
  ScheduleConfigSchema,
  ScheduleTargetSchema,
  TimeZone,
  type ScheduleConfig,
  type ScheduleTarget,
} from './config-schema.ts';
export { cronProblem, describeCron, nextRuns } from './cron.ts';
export { ChecklistJobData, RetentionJobData, ScheduledBackupData, ScheduledBaseBackupData, ScheduledRestoreTestData } from './job-data.ts';
export { SCHEDULER_PREFIX, diffSchedulers, planSchedulers, upsertArgs, type PlannedScheduler, type SchedulerQueue } from './plan.ts';
export {
  DEFAULT_POLICY,
  resolvePolicy,
  type BackupSchedule,
  type Environment,
  type EnvironmentPolicy,
  type RestoreTestSchedule,
  type TargetPolicy,
} from './policy.ts';
export { formatScheduleStatus, scheduleStatus, type ScheduleStatusRow } from './status.ts';
export { plannedSchedulers, syncSchedulers, type ScheduleSource, type SchedulerQueues, type SyncResult } from './sync.ts';
export { canonicalTimeZone, formatInZone, shouldRunToday, zonedParts, type RunRule } from './time.ts';
