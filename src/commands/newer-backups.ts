import { formatTime } from '../format.ts';
import { withDeadline } from '../jobs/producers.ts';
import { listWithTestVerdicts, type Manifest, type Storage } from '../storage/index.ts';

/**
 * Before a replacement by `m`: the good backups of its target taken after it, said, since replacing a database with
 * an older backup than there is loses more than needed and is rarely what is meant at 3 a.m. (QA: the confirmation
 * did not say, with a backup 19 MB against a live 316 MB). '' when there are none, or the listing did not answer
 * within a second (the confirmation must not wait on it). `quote` marks an id up for its surface, `time` a time.
 */
export async function newerBackupsSaid(
  storage: Storage,
  m: Manifest,
  quote: (id: string) => string,
  time: (d: Date) => string = (d) => formatTime(d),
): Promise<string> {
  const newer = await withDeadline(
    1000,
    listWithTestVerdicts(storage, m.target).then(({ backups, failedTests }) =>
      backups.filter((b) => Date.parse(b.startedAt) > Date.parse(m.startedAt) && !failedTests.has(b.backupId)),
    ),
    'listing newer backups',
    'storage',
  ).catch(() => []);
  const newest = newer.reduce<Manifest | undefined>((a, b) => (!a || b.startedAt > a.startedAt ? b : a), undefined);
  if (!newest) return '';
  const count = newer.length === 1 ? 'a newer good backup' : `${newer.length} newer good backups`;
  return ` *${m.target} has ${count}:* the newest is ${quote(newest.backupId)}, taken ${time(new Date(newest.startedAt))}; this one loses everything written since ${time(new Date(m.startedAt))}.`;
}
