import { escapeMrkdwn, formatTime } from '../format.ts';
import { type RestoreJobInfo, rtoText, who } from './restore-messages.ts';

/** `/restore-test history`: restore tests and full restores, newest first, with their restore time (RTO). */
export interface HistoryLine {
  /** Full restores (`restore`, nothing selected) are listed beside the tests: their restore time is a measured RTO too. */
  kind?: 'restore' | 'restore-test';
  database?: string | null;
  startedAt: string;
  backupId: string;
  passed: boolean | null;
  restoreMs: number;
  /** Null when nothing was restored (its checksums or the restore failed): no restore time is claimed. */
  restoredBytes: number | null;
  problems: string[];
  requestedBy: RestoreJobInfo['requestedBy'];
}

const historyLine = (r: HistoryLine) =>
  `• ${formatTime(r.startedAt)} · ${r.kind === 'restore' ? `*full restore* into \`${r.database ?? '?'}\` · ` : ''}\`${r.backupId}\` · ${r.passed ? 'passed' : `*FAILED* (${escapeMrkdwn(r.problems[0] ?? '?')})`} · restore ${rtoText(r)} · by ${who(r.requestedBy)}`;

export function restoreTestHistory(records: HistoryLine[], target?: string, limit = 15): string {
  if (records.length === 0)
    return `No restore tests${target ? ` of *${target}*` : ''} on record yet. Run one with \`/restore-test latest${target ? ` ${target}` : ''}\`.`;
  const lines = records.slice(0, limit).map(historyLine);
  const more = records.length > limit ? `\n… and ${records.length - limit} older, kept as records beside the backups (\`<target>/_records/\`)` : '';
  const shown = records.length > limit ? `the ${limit} newest of ${records.length} on record` : `newest first, ${records.length} on record`;
  return `*Restore tests and full restores${target ? ` of ${target}` : ''}* (${shown}):\n${lines.join('\n')}${more}\nPoint-in-time restore tests are not listed here: \`/backup health${target ? ` ${target}` : ''}\` shows the last one.`;
}
