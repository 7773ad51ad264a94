// The health folder's one door: pure verdicts, their memory in Redis, and their two outward views.
export { evaluateHealth, pagerCondition, resolveThresholds } from './conditions.ts';
export { rpoCondition } from './rpo-condition.ts';
export { median } from './backup-conditions.ts';
export { createHealthState, StoredConditionSchema, type AppliedResult, type HealthState, type StoredCondition } from './state.ts';
export { nagiosReport, type NagiosExitCode } from './nagios.ts';
export { createMetrics, registerWorkerProcessGauge, QUEUE_STATES, type HealthMetrics, type QueueState, type TargetMetricsInput } from './metrics.ts';
export {
  DEFAULT_THRESHOLDS,
  HEALTH_CONDITIONS,
  MIN_SIZE_HISTORY,
  type BackupRunSummary,
  type BaseBackupHealth,
  type DriftAck,
  type ConditionResult,
  type HealthCondition,
  type HealthInput,
  type HealthSeverity,
  type HealthStatus,
  type HealthThresholds,
  type RestoreTestSummary,
} from './types.ts';
export { checkFromRedis, checkTarget, encryptionRequired } from './collect.ts';
export { backupDiskCondition, diskSubject, inputDiskNeed, type TargetDiskNeed } from './disk-condition.ts';
export { healthSources, pitrSources } from './sources.ts';
export { type RunLog, createRunLog } from './last-runs.ts';
export { firstBackupDue, longestScheduledGapHours, targetThresholds } from './target-thresholds.ts';
export { readArchiveFacts } from './wal-facts.ts';
export { noWindowSentence } from './wal-conditions.ts';
export { readDriftAck, writeDriftAck } from './drift-ack.ts';
export { configuredDrift } from './drift-condition.ts';
export { DEFAULT_SLOT_MAX_BYTES, type WalArchiveFacts, type WalHealthFacts, type WalSlotFacts } from './wal-types.ts';
export { CHECK_NOW_MS, checkedNow } from './checked-now.ts';
