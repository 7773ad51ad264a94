import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { withDeadline } from '../jobs/producers.ts';
import { diffText } from '../notifications/drift-messages.ts';
import { findBackup, targetOfBackupId, type Storage } from '../storage/index.ts';
import { driftPair } from '../drift/index.ts';
import { configuredDrift } from '../health/index.ts';
import { SEE_LIST } from './restore-text.ts';

/**
 * `/backup diff <id-a> <id-b>` (viewers): both drifts between two backups of one target, read from their manifests
 * alone (no database is touched), the earlier backup first whatever order they were given in.
 */
export async function diffReply(ask: { deps: { config: Config; storage: Storage } }, req: { a: string; b: string }): Promise<{ text: string }> {
  const { config, storage } = ask.deps;
  const target = targetOfBackupId(req.a);
  if (target === null || target !== targetOfBackupId(req.b)) {
    return { text: `\`${req.a}\` and \`${req.b}\` are not backups of one target: \`/backup diff\` compares two backups of the same target.` };
  }
  if (req.a === req.b) return { text: 'Those are the same backup: give two different backup ids (from `/backup list`).' };
  findTarget(config, target);
  const [a, b] = await withDeadline(
    2500,
    Promise.all([findBackup(storage, req.a, SEE_LIST.slack), findBackup(storage, req.b, SEE_LIST.slack)]),
    'reading the two manifests',
    'storage',
  );
  const [earlier, later] = Date.parse(a.startedAt) <= Date.parse(b.startedAt) ? [a, b] : [b, a];
  return { text: diffText(driftPair(configuredDrift(config.health.thresholds), earlier, later)) };
}
