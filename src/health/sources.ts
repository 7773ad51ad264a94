import type { Config } from '../config.ts';
import { encryptionRequired, type HealthSources } from './collect.ts';
import { firstBackupDue, targetThresholds } from './target-thresholds.ts';
import { readWalHealthFacts } from './wal-facts.ts';

/**
 * Health sources judged by the config's rules (thresholds per target, first-backup due dates, which targets must be
 * encrypted), read from the given storage, run log and queue. One place, so `/backup health`, the `check` CLI, the
 * checklists and /metrics judge a target alike.
 */
export function healthSources(config: Config, from: Pick<HealthSources, 'storage' | 'runs' | 'backupQueue'>): HealthSources {
  return {
    storage: from.storage,
    runs: from.runs,
    backupQueue: from.backupQueue,
    thresholds: config.health.thresholds,
    thresholdsFor: targetThresholds(config),
    firstBackupDue: firstBackupDue(config),
    encryptionRequired: encryptionRequired(config),
    pitr: (target) => config.targets.some((t) => t.name === target && t.pitr !== undefined),
    walHealth: (target) => readWalHealthFacts(config, target),
  };
}
