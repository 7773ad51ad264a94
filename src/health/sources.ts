import type { Config } from '../config.ts';
import { encryptionRequired, type HealthSources } from './collect.ts';
import { firstBackupDue, targetThresholds } from './target-thresholds.ts';
import { readWalHealthFacts } from './wal-facts.ts';
import { archiveBases } from '../postgres/pitr/s3-archive.ts';
import { setAsideBases } from '../postgres/pitr/wal-index.ts';

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
    walHealth: (target) => readWalHealthFacts(config, target),
    ...pitrSources(config),
  };
}

/**
 * What point-in-time recovery adds to a target's health: its WAL stream, and its base backups (where the archive is:
 * BACKUP_DIR, or the bucket with S3_MODE=primary) with the age the config allows the newest (`pitr.baseBackup.maxAgeHours`).
 */
export function pitrSources(config: Pick<Config, 'targets' | 'backupDir' | 's3'>): Pick<HealthSources, 'pitr' | 'baseBackups'> {
  const pitrOf = (target: string) => config.targets.find((t) => t.name === target)?.pitr;
  return {
    pitr: (target) => pitrOf(target) !== undefined,
    baseBackups: async (target) => {
      const pitr = pitrOf(target);
      if (!pitr) return undefined;
      const [bases, setAside] = await Promise.all([archiveBases(config, target), setAsideBases(config.backupDir, target)]);
      const newest = bases.at(-1);
      return {
        newest: newest ? { id: newest.id, finishedAt: newest.finishedAt, bytes: newest.bytes } : null,
        maxAgeHours: pitr.baseBackup?.maxAgeHours ?? 192,
        ...(setAside.length ? { setAside } : {}),
      };
    },
  };
}
