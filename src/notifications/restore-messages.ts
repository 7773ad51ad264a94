import { escapeMrkdwn, formatBytes, formatCount, formatDuration, formatSecond } from '../format.ts';
import type { Block, ChannelMessage } from './types.ts';
import { isWholeDatabase } from '../restore-scope.ts';
import { newestGoodSentence, type RestoreRecord } from '../storage/index.ts';

/** Pure builders for restore tests and restores: outcome → `{ text, blocks }`. */

export interface RestoreJobInfo {
  target: string;
  backupId: string;
  jobId: string;
  requestedBy: { source: string; userId?: string | undefined; userName?: string | undefined };
  /** Why this test runs, when it is not a plain request: `pre-migration JIRA-1234`, `scheduled (monthly)`. */
  purpose?: string | undefined;
}

/** The parts of a restore-test outcome a message shows (a subset of the stored record). */
export interface RestoreTestVerdict {
  passed: boolean | null;
  problems: string[];
  restoreMs: number;
  durationMs: number;
  restoredBytes: number | null;
  database: string;
  dropped: boolean;
  checked: Pick<RestoreRecord['checked'], 'level' | 'archive' | 'amcheck'> & {
    checksums: Array<{ file: string; ok: boolean }>;
    tables: number;
    objects: string[];
    smokeQueries: Array<{ name: string; ok: boolean }>;
  };
  /** What was done before the restore (the backup's roles applied on another server), said under the verdict. */
  notes?: string[] | undefined;
}

export function who(r: RestoreJobInfo['requestedBy']): string {
  if (r.userId) return `<@${r.userId}>`;
  return r.source === 'schedule' ? 'the schedule' : escapeMrkdwn(r.userName ?? r.source);
}

/** `requested by @ana · pre-migration JIRA-1`: the label ties the test to the migration waiting on it. */
const requested = (req: RestoreJobInfo) => `requested by ${who(req.requestedBy)}${req.purpose ? ` · ${escapeMrkdwn(req.purpose)}` : ''}`;

const context = (text: string): Block => ({ type: 'context', elements: [{ type: 'mrkdwn', text }] });

export function restoreTestRunning(req: RestoreJobInfo, phase: string): ChannelMessage {
  return {
    text: `Restore test of ${req.backupId} running (${phase})`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:hourglass_flowing_sand: Restore test of \`${req.backupId}\` running — ${escapeMrkdwn(phase)}` } },
      context(`job \`${req.jobId}\` · target ${req.target} · ${requested(req)}`),
    ],
  };
}

const plural = (n: number, one: string, many = `${one}s`) => `${formatCount(n)} ${n === 1 ? one : many}`;

/**
 * What was checked, in the words of the level that ran: "checksums of 2 files; 12 tables: content identical; 214
 * definitions identical; 2 large objects identical; amcheck clean (level content)". "Row for row" is never said:
 * rows are compared by content, or their counts are.
 */
export function checkedSummary(v: Pick<RestoreTestVerdict, 'checked'>): string {
  const c = v.checked;
  const failedSums = c.checksums.filter((x) => !x.ok).length;
  const parts = [`checksums of ${plural(c.checksums.length, 'file')}${failedSums ? `: ${formatCount(failedSums)} FAILED` : ''}`];
  const a = c.archive;
  if (a?.compared && a.tables !== undefined) {
    const d = a.differing ?? { tables: 0, definitions: 0, largeObjects: 0 };
    parts.push(`${plural(a.tables, 'table')}: ${d.tables ? `content of ${formatCount(d.tables)} differs` : 'content identical'}`);
    parts.push(`${plural(a.definitions ?? 0, 'definition')} ${d.definitions ? `(${formatCount(d.definitions)} differ)` : 'identical'}`);
    if (a.largeObjects) parts.push(`${plural(a.largeObjects, 'large object')} ${d.largeObjects ? `(${formatCount(d.largeObjects)} differ)` : 'identical'}`);
  } else if (c.tables) {
    parts.push(`row counts of ${plural(c.tables, 'table')}`);
    if (a && !a.compared) parts.push(`content NOT compared (${a.why ?? 'unknown'})`);
  }
  if (c.objects.length) parts.push(`${c.objects.length} kinds of objects counted`);
  if (c.amcheck)
    parts.push(
      c.amcheck.ran
        ? `amcheck${c.amcheck.heapallindexed ? ' (heapallindexed)' : ''} ${c.amcheck.corrupt ? `found ${plural(c.amcheck.corrupt, 'corrupt object')}` : 'clean'}`
        : `amcheck NOT run (${c.amcheck.why ?? 'unknown'})`,
    );
  if (c.smokeQueries.length) parts.push(plural(c.smokeQueries.length, 'smoke query', 'smoke queries'));
  // A test that stopped at its checksums compared nothing: no level is claimed for it.
  const ranLevel = c.level !== undefined || c.tables > 0 || c.objects.length > 0;
  return ranLevel ? `${parts.join('; ')} (level ${c.level ?? 'counts'})` : `${parts.join('; ')}; nothing restored, nothing compared`;
}

/** The first few problems, by name, in the verdict itself; all of them go in the thread. */
const FIRST_PROBLEMS = 3;

export function restoreTestFinished(req: RestoreJobInfo, v: RestoreTestVerdict, escalation: string | null): ChannelMessage {
  const ok = v.passed === true;
  const head = ok
    ? `:white_check_mark: Restore test of \`${req.backupId}\` passed`
    : `:x: Restore test of \`${req.backupId}\` FAILED: ${escapeMrkdwn(v.problems[0] ?? 'see the thread')}${v.problems.length > FIRST_PROBLEMS ? ` (+${v.problems.length - FIRST_PROBLEMS} more in the thread)` : ''}`;
  const next = v.problems.slice(1, FIRST_PROBLEMS).map((p) => `• ${escapeMrkdwn(p)}`);
  const fields = [
    // Nothing restored (checksums failed, the restore failed): no restore time is claimed.
    `*Restore time (RTO)*\n${rtoText(v)}`,
    `*Whole test*\n${formatDuration(v.durationMs)}`,
    `*Restored size*\n${v.restoredBytes === null ? 'n/a' : formatBytes(v.restoredBytes)}`,
    `*Scratch database*\n\`${v.database}\` ${v.dropped ? (v.restoredBytes === null ? 'not left behind' : 'dropped') : '*NOT dropped*'}`,
  ];
  return {
    text: ok ? `Restore test of ${req.backupId} passed in ${formatDuration(v.durationMs)}` : `Restore test of ${req.backupId} FAILED: ${v.problems[0] ?? ''}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: head.slice(0, 2900) } },
      ...(next.length ? [{ type: 'section', text: { type: 'mrkdwn', text: next.join('\n').slice(0, 2900) } } as Block] : []),
      { type: 'section', fields: fields.map((text) => ({ type: 'mrkdwn', text })) },
      ...(v.notes?.length ? [context(escapeMrkdwn(v.notes.join(' ')).slice(0, 2900))] : []),
      context(`Checked: ${checkedSummary(v)} · job \`${req.jobId}\` · ${requested(req)}${escalation ? ` · ${escalation}` : ''}`),
    ],
  };
}

/**
 * A backup a restore or restore test found corrupted, read back and marked damaged (storage/scrub.ts confirmDamage),
 * with the one to use instead: null when none is left, undefined when the listing did not answer in time.
 */
export function backupMarkedDamaged(
  m: { target: string; backupId: string },
  why: string,
  newest: string | null | undefined,
  /** Only its roles file is damaged: a restore that does not apply roles still takes it (catalog.ts findRestorable). */
  rolesOnly = false,
): ChannelMessage {
  const list = `\`/backup list ${m.target}\``;
  const good = newestGoodSentence(m.target, newest, (id) => `\`${id}\``);
  const instead =
    good === null
      ? `${list} shows the good ones.`
      : newest === null
        ? `${good}: take one now (\`/backup now ${m.target}\`).`
        : `${good} (${list} shows them all).`;
  const text = `:rotating_light: Backup \`${m.backupId}\` is marked damaged (${escapeMrkdwn(why)}; read back twice more, the same): listings leave it out, ${rolesOnly ? 'restore tests and `/restore … --with-globals` refuse it (only its roles file is damaged: other restores still take it)' : '`/restore` and restore tests refuse it'}, and the next health check pages it. ${instead}`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

/** The restore time a verdict claims: none when nothing was restored (the checksums or the restore failed). */
export const rtoText = (r: { restoredBytes: number | null; passed: boolean | null; restoreMs: number }): string =>
  r.restoredBytes === null && !r.passed ? 'n/a (nothing restored)' : formatDuration(r.restoreMs);

export function restoreTestProblems(problems: string[]): ChannelMessage {
  const shown = problems.slice(0, 40).map((p) => `• ${escapeMrkdwn(p)}`);
  const more = problems.length > shown.length ? `\n… and ${problems.length - shown.length} more` : '';
  const text = `What differed or failed:\n${shown.join('\n')}${more}`.slice(0, 2900);
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

export function restoreTestError(req: RestoreJobInfo, reason: string, escalation: string | null): ChannelMessage {
  return {
    text: `Restore test of ${req.backupId} could not run: ${reason}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:x: Restore test of \`${req.backupId}\` could not run: ${escapeMrkdwn(reason)}` } },
      context(`job \`${req.jobId}\` · ${requested(req)}${escalation ? ` · ${escalation}` : ''}`),
    ],
  };
}

export interface RestoreSelectionInfo extends RestoreJobInfo {
  tables: string[];
  schemas: string[];
  database: string;
  create: boolean;
  confirmedBy: string | null;
}

function selection(s: RestoreSelectionInfo): string {
  if (isWholeDatabase(s)) return 'the whole database';
  return [...s.tables.map((t) => `\`${t}\``), ...s.schemas.map((x) => `schema \`${x}\``)].join(', ');
}

export function restoreRunning(s: RestoreSelectionInfo, phase: string): ChannelMessage {
  const where = s.create ? `a new database \`${s.database}\`` : `the existing database \`${s.database}\``;
  return {
    text: `Restore of ${isWholeDatabase(s) ? 'the whole database' : s.tables.concat(s.schemas).join(', ')} from ${s.backupId} into ${s.database} running`,
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `:hourglass_flowing_sand: Restoring ${selection(s)} from \`${s.backupId}\` into ${where} — ${escapeMrkdwn(phase)}` },
      },
      context(`job \`${s.jobId}\` · requested by ${who(s.requestedBy)}${s.confirmedBy ? ` · overwrite confirmed by <@${s.confirmedBy}>` : ''}`),
    ],
  };
}

/** When a replacement's restored copy took the live name, to the second, and how long the swap held it. */
export const swapSaid = (database: string, swap: { at: string; ms: number }) =>
  `swapped in as ${database} at ${formatSecond(new Date(swap.at))} (${database} refused connections for ${formatDuration(swap.ms)} before it, its sessions ended: what they wrote until then is in the kept copy)`;

/** `lost`: the worker died mid-restore, so what the database holds is not known (the reason says so). */
export function restoreFinished(
  s: RestoreSelectionInfo,
  r: {
    problems: string[];
    restoreMs: number;
    tables: Array<{ name: string; rows: number }>;
    notes?: string[];
    lost?: boolean;
    /** A replacement's swap (RestoreRecord swappedAt, swapMs). */
    swap?: { at: string; ms: number };
  },
): ChannelMessage {
  const ok = r.problems.length === 0;
  const rows = r.tables.map((t) => `\`${t.name}\` ${formatCount(t.rows)} rows`).join(', ');
  const head = ok
    ? `:white_check_mark: Restored ${selection(s)} from \`${s.backupId}\` into \`${s.database}\` in ${formatDuration(r.restoreMs)}${r.swap ? `; ${swapSaid(s.database, r.swap)}` : ''}${rows ? `: ${rows}` : ''}`
    : `:x: Restore of ${selection(s)} from \`${s.backupId}\` into \`${s.database}\` FAILED: ${escapeMrkdwn(r.problems[0] ?? '')}${s.create || r.lost ? '' : ' The database was left as it was (one transaction).'}`;
  return {
    text: ok
      ? `Restored ${isWholeDatabase(s) ? 'the whole database ' : ''}into ${s.database} from ${s.backupId}`
      : `Restore into ${s.database} FAILED: ${r.problems[0] ?? ''}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: head.slice(0, 2900) } },
      // What the restore left out or the reader must do next (the planner's and the full restore's notes).
      ...(r.notes?.length
        ? [
            {
              type: 'section' as const,
              text: {
                type: 'mrkdwn' as const,
                text: r.notes
                  .map((n) => `• ${escapeMrkdwn(n)}`)
                  .join('\n')
                  .slice(0, 2900),
              },
            },
          ]
        : []),
      context(`job \`${s.jobId}\` · requested by ${who(s.requestedBy)}${s.confirmedBy ? ` · overwrite confirmed by <@${s.confirmedBy}>` : ''} · recorded`),
    ],
  };
}
