import type { BaseBackup } from './base-backup.ts';
import type { WalEntry } from './wal-store.ts';
import { walGaps } from './window.ts';

/**
 * What a timeline switch since the newest base backup means (window.ts `switched`), in sentences: the WAL written on
 * the new timeline is archived, and no base backup reaches it until one is taken there.
 */
export function switchedSentence(target: string, s: { timeline: number; segment: string; at: Date }): string {
  return (
    `the server moved to timeline ${s.timeline} (a promotion, or a restored copy made the primary) at about ${s.at.toISOString()} (segment ${s.segment}): ` +
    `the WAL written since is archived, but recovery from a base backup follows that backup's timeline, and none was taken on timeline ${s.timeline} yet. ` +
    `Take one now (\`pg-backup-bot base-backup ${target}\`, or \`/backup now --physical ${target}\`): the window reaches the new timeline once it finishes.`
  );
}

/**
 * Why no window opens when a gap is to blame (recoverableWindow null, walGaps not empty): a segment went missing
 * before any WAL that reaches past the base backup's end was archived. "Yet" would say waiting helps; it does not.
 */
export function gapBeforeWindow(target: string, bases: BaseBackup[], wal: ReadonlyArray<Pick<WalEntry, 'name'>>): string | null {
  const gap = walGaps(bases, wal)[0];
  if (!gap) return null;
  return (
    `No point in time of ${target} can be recovered: segment ${gap} is missing from the WAL archive, before any WAL that reaches past the base backup's end. ` +
    `A base backup taken after it opens the window again (\`pg-backup-bot base-backup ${target}\`; the bot starts one itself when its health check finds the gap, unless pitr.baseBackup.afterBreak is false).`
  );
}
