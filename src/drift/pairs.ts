import type { Logger } from '../logger.ts';
import type { Manifest, Storage } from '../storage/index.ts';
import { dataDrift, incomparable, previousBackup, type DataDrift, type DriftThresholds } from './data-drift.ts';
import { schemaDrift, type SchemaDrift } from './schema-drift.ts';

/** Both drifts between two backups of a target, the earlier first. */
export interface DriftPair {
  earlier: string;
  later: string;
  schema: SchemaDrift;
  data: DataDrift;
}

export function driftPair(t: DriftThresholds, earlier: Manifest, later: Manifest): DriftPair {
  return {
    earlier: earlier.backupId,
    later: later.backupId,
    schema: schemaDrift(earlier, later, incomparable(earlier, later)),
    data: dataDrift(earlier, later, t),
  };
}

/**
 * The drift of a finished backup against the target's previous one (`accept` narrows which: the pre-migration
 * checklist wants the last scheduled backup). Null when there is none, or storage cannot be listed: the drift is
 * news, never a reason to fail the job that reports it.
 */
export async function driftSincePrevious(
  o: { storage: Storage; thresholds: DriftThresholds; log: Logger; accept?: (m: Manifest) => boolean },
  manifest: Manifest,
): Promise<DriftPair | null> {
  try {
    const earlier = previousBackup(await o.storage.list(manifest.target), manifest, o.accept);
    return earlier ? driftPair(o.thresholds, earlier, manifest) : null;
  } catch (err) {
    o.log.warn({ err }, 'could not compare the backup with the previous one');
    return null;
  }
}
