import type { Config } from '../config.ts';
import { driftSincePrevious } from '../drift/index.ts';
import { configuredDrift } from '../health/index.ts';
import type { PreMigrationChecklistData } from '../jobs/checklist-data.ts';
import type { Logger } from '../logger.ts';
import { preMigrationDriftMessage } from '../notifications/drift-messages.ts';
import type { MessageRef, Notifier } from '../notifications/types.ts';
import type { Storage } from '../storage/index.ts';

/**
 * Under a pre-migration checklist: the drift from the target's last scheduled backup to the pre-migration backup, so
 * the migration's author sees what the database looked like before (and what changed since the schedule last ran).
 * Said in the checklist's thread; never fails the checklist, which is posted already.
 */
export async function replyPreMigrationDrift(
  deps: { config: Pick<Config, 'health'>; storage: Storage; notifier: Pick<Notifier, 'reply'> },
  data: PreMigrationChecklistData,
  anchor: MessageRef,
  log: Logger,
): Promise<void> {
  if (!data.backup.ok) return;
  try {
    const manifest = await deps.storage.readManifest(data.target, data.backup.backupId);
    const thresholds = configuredDrift(deps.config.health.thresholds);
    const drift = await driftSincePrevious({ storage: deps.storage, thresholds, log, accept: (m) => m.kind === 'scheduled' }, manifest);
    await deps.notifier.reply(anchor, preMigrationDriftMessage(drift, data.label));
  } catch (err) {
    log.warn({ err }, 'could not say the pre-migration backup’s drift');
  }
}
