import { createHash } from 'node:crypto';
import type { ConditionResult, DamagedItem } from './types.ts';

/** How many are named in the evidence; the rest are counted. `/backup list` names them all. */
/** What a backup whose roles file alone is damaged still gives. */
export const INTACT = 'its database archive is intact: restores without --with-globals take it';
const NAMED = 3;

/**
 * Finished backups that can no longer be restored: a manifest that does not parse, an artifact missing or of the
 * wrong size, within the backup's deadline (past it, the files are retention's to finish deleting). Nothing else
 * says so: listing leaves them out, so every other condition judges the backups still good, and a newest backup
 * lost this way reads as an older newest one. It pages (error): a disk or bucket that loses files loses the next
 * ones too. Bit rot that keeps a file's size shows here once the checksum scrub has read the backup (storage/scrub.ts
 * marks it) or the point-in-time archive's file (pitr-scrub.ts sets it aside), and in the restore test's checksums.
 */
export function damagedCondition(target: string, all: readonly DamagedItem[], stored = 1): ConditionResult {
  // Past its deadline: retention deletes it at its next run; said, never paged (QA: "every stored backup is whole").
  const expired = all.filter((d) => d.expired).length;
  const damaged = all.filter((d) => !d.expired);
  if (damaged.length === 0) {
    if (expired > 0) {
      const one = expired === 1;
      return {
        condition: 'damaged',
        status: 'ok',
        severity: 'error',
        summary: `No damaged backup of ${target} within its deadline`,
        evidence: `none within its deadline; ${expired} stored past ${one ? 'its' : 'their'} deadline ${one ? 'is' : 'are'} damaged, and retention deletes ${one ? 'it' : 'them'} at its next run`,
      };
    }
    // Nothing stored is nothing judged, not "every stored backup is whole" (QA).
    if (stored === 0)
      return {
        condition: 'damaged',
        status: 'ok',
        unjudged: true,
        severity: 'error',
        summary: `No backup of ${target} is stored to judge`,
        evidence: 'no backup stored',
      };
    return { condition: 'damaged', status: 'ok', severity: 'error', summary: `No damaged backup of ${target}`, evidence: 'every stored backup is whole' };
  }
  const n = damaged.length;
  const named = damaged.slice(0, NAMED).map((d) => `${d.backupId} (${d.why}${d.archiveIntact ? `; ${INTACT}` : ''})`);
  const more = n > NAMED ? `; and ${n - NAMED} more (\`/backup list ${target}\`)` : '';
  const aside = damaged.filter((d) => d.wal && d.setAside).length;
  const wal = damaged.filter((d) => d.wal && !d.setAside).length;
  const backups = n - wal - aside;
  // A roles file alone damaged still restores without --with-globals: not "cannot be restored" (QA).
  const intact = damaged.filter((d) => d.archiveIntact).length;
  const restorable =
    intact === 0
      ? 'and cannot be restored'
      : intact === backups
        ? `(the roles file${backups === 1 ? '' : 's'}: restorable without --with-globals)`
        : `(${intact} of them only in the roles file: restorable without --with-globals)`;
  const said = [
    backups ? `${backups} stored backup${backups === 1 ? '' : 's'} of ${target} ${backups === 1 ? 'is' : 'are'} damaged ${restorable}` : '',
    wal ? `${wal} WAL file${wal === 1 ? '' : 's'}${backups ? '' : ` of ${target}`} ${wal === 1 ? 'is' : 'are'} lost from the archive` : '',
    aside
      ? `${aside} file${aside === 1 ? '' : 's'} of ${backups || wal ? 'its' : `${target}'s`} point-in-time archive ${aside === 1 ? 'was' : 'were'} found damaged by the checksum scrub`
      : '',
  ].filter(Boolean);
  return {
    condition: 'damaged',
    status: 'failing',
    severity: 'error',
    summary: said.join('; '),
    evidence:
      `${named.join('; ')}${more}. Check the storage under them (disk, mount, bucket), take a new backup${wal + aside ? ` (for the point-in-time archive a base backup: \`pg-backup-bot base-backup ${target}\`)` : ''}, and read the others ` +
      'back now with `pg-backup-bot scrub --all`. Retention deletes a backup the checksum scrub marked once its deadline passes; ' +
      'any other damaged one stays until you delete its directory (or prefix) by hand, after looking at it',
    value: n,
    // A file found damaged while others already are is news too: each other set of damaged files is its own episode.
    episode: createHash('sha256')
      .update(
        damaged
          .map((d) => d.backupId)
          .sort()
          .join('\n'),
      )
      .digest('hex')
      .slice(0, 16),
  };
}
