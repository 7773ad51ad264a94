import { coalesceFresh } from '../coalesce.ts';
import { type Config, findTarget } from '../config.ts';
import { withDeadline } from '../jobs/producers.ts';
import { slackDate } from '../notifications/slack-time.ts';
import { listWithTestVerdicts, type Manifest, type Storage, strayBackups } from '../storage/index.ts';
import { formatBackupList } from './replies.ts';
import { walWindowLines } from './wal-status.ts';

/** The finished backups, and which of them failed their latest restore test (listed, marked: not good). */
export type BackupLister = (target: string | undefined) => Promise<{ backups: Manifest[]; failedTests: ReadonlySet<string> }>;

/**
 * Shared by concurrent requests, never older than the request (coalesce.ts): a channel full of engineers typing
 * `/backup list` during an incident costs two listings of storage, not one each.
 */
export function backupLister(storage: Storage): BackupLister {
  return coalesceFresh((target: string | undefined) => listWithTestVerdicts(storage, target));
}

/** `/backup list [target]`: the newest backups, those left out as damaged or without a manifest, and each PITR target's window. */
export async function listReply(deps: { config: Config; storage: Storage }, listBackups: BackupLister, target: string | undefined): Promise<{ text: string }> {
  if (target) findTarget(deps.config, target);
  const [{ backups, failedTests }, windows, stray] = await withDeadline(
    2500,
    Promise.all([listBackups(target), walWindowLines(deps.config, target), strayBackups(deps.storage, target)]),
    'listing backups',
    'storage',
  );
  const time = (at: Date) => slackDate(at, deps.config.timezone);
  const list = formatBackupList(backups, target, { time, damaged: deps.storage.damaged?.(target) ?? [], failedTests, stray });
  return { text: windows.length ? `${list}\n\n${windows.join('\n')}`.slice(0, 3900) : list };
}
