import { slackDate } from './slack-time.ts';
import type { Manifest } from '../storage/index.ts';
import { totalBytes, totalRows } from '../storage/index.ts';
import { escapeMrkdwn, formatBytes, formatCount, formatDuration } from '../format.ts';
import type { Block, ChannelMessage } from './types.ts';

/** Pure builders: job state → `{ text, blocks }`. I/O lives in the notifiers. */

export interface BackupRequestInfo {
  target: string;
  jobId: string;
  requestedBy: { source: string; userId?: string | undefined; userName?: string | undefined };
  kind: string;
  label?: string | null;
  /** The job scheduler that made a scheduled backup: the message names it. */
  schedule?: { id: string; retentionClass: string; keepDays: number } | undefined;
}

/** `scheduled by \`daily\` (daily, kept 30 days)` for a scheduled backup, else the kind; then the label, if any. */
function kindOf(req: BackupRequestInfo): string {
  const s = req.schedule;
  const kind = s ? `scheduled by \`${s.id}\` (${s.retentionClass}, kept ${s.keepDays} days)` : req.kind;
  // The label (a pre-migration's ticket) is what people search the channel for: every state of the message keeps it.
  return req.label ? `${kind} · ${escapeMrkdwn(req.label)}` : kind;
}

function who(r: BackupRequestInfo['requestedBy']): string {
  if (r.userId) return `<@${r.userId}>`;
  if (r.source === 'schedule') return 'the schedule';
  return r.userName ? escapeMrkdwn(r.userName) : r.source;
}

function context(text: string): Block {
  return { type: 'context', elements: [{ type: 'mrkdwn', text }] };
}

export function backupStarted(req: BackupRequestInfo, progress?: string): ChannelMessage {
  const title = `:hourglass_flowing_sand: Backup of *${req.target}* running`;
  const detail = progress ? `${title} — ${progress}` : title;
  return {
    text: `Backup of ${req.target} running (${req.schedule ? `schedule ${req.schedule.id}, ` : ''}job ${req.jobId})`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: detail } },
      context(`job \`${req.jobId}\` · ${kindOf(req)} · requested by ${who(req.requestedBy)}`),
    ],
  };
}

/** `tz`: the configured zone, the fallback of the per-reader date token. */
export function backupSucceeded(req: BackupRequestInfo, m: Manifest, tz = 'UTC'): ChannelMessage {
  const db = m.artifacts.find((a) => a.role === 'database');
  const tables = m.verification.tables.length;
  const fields = [
    `*Backup id*\n\`${m.backupId}\``,
    `*Size*\n${formatBytes(totalBytes(m))} (database ${formatBytes(m.database.sizeBytes)})`,
    `*Duration*\n${formatDuration(m.durationMs)}`,
    `*Compression*\n${db ? `${db.compression}${db.compressionLevel ? ` level ${db.compressionLevel}` : ''}, ${ratio(db.rawBytes, db.bytes)}` : 'n/a'}`,
    `*Tables / rows*\n${formatCount(tables)} / ${formatCount(totalRows(m))}`,
    `*sha256*\n\`${db?.sha256.slice(0, 12) ?? 'n/a'}…\``,
    `*Kept until*\n${m.retainUntil ? slackDate(m.retainUntil, tz) : 'until deleted by hand'}`,
    `*Globals (roles)*\n${m.globals.included ? (m.globals.rolePasswords ? 'included' : 'included, without role passwords') : 'skipped'}`,
  ];
  return {
    text: `Backup of ${m.target} succeeded: ${m.backupId}, ${formatBytes(totalBytes(m))} in ${formatDuration(m.durationMs)}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:white_check_mark: Backup of *${m.target}* succeeded` } },
      { type: 'section', fields: fields.map((text) => ({ type: 'mrkdwn', text })) },
      context(
        `job \`${req.jobId}\` · ${kindOf(req)} · requested by ${who(req.requestedBy)} · PostgreSQL ${versionNumber(m.database.serverVersion)}, pg_dump ${versionNumber(m.database.pgDumpVersion)} · verified readable with pg_restore --list`,
      ),
    ],
  };
}

/** `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` → `15.20`. */
export function versionNumber(text: string): string {
  return /\d+(?:\.\d+)+/.exec(text)?.[0] ?? text;
}

function ratio(raw: number, stored: number): string {
  return stored > 0 ? `${(raw / stored).toFixed(1)}:1` : 'n/a';
}

export function backupFailed(req: BackupRequestInfo, reason: string, escalation: string): ChannelMessage {
  return {
    text: `Backup of ${req.target} FAILED: ${reason}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:x: Backup of *${req.target}* failed: ${escapeMrkdwn(reason)}` } },
      context(`job \`${req.jobId}\` · ${kindOf(req)} · requested by ${who(req.requestedBy)} · nothing was stored · ${escalation}`),
    ],
  };
}

/** Thread detail under the verdict: the largest tables with their row counts, and the object counts. */
export function backupDetails(m: Manifest): ChannelMessage {
  const top = [...m.verification.tables].sort((a, b) => b.rows - a.rows).slice(0, 15);
  const o = m.verification.objects;
  const lines = top.map((t) => `${`${t.schema}.${t.table}`.padEnd(40)} ${formatCount(t.rows).padStart(12)}`);
  const objects = `tables ${o.tables} (partitioned ${o.partitionedTables}) · indexes ${o.indexes} · constraints p${o.constraints.p}/f${o.constraints.f}/u${o.constraints.u}/c${o.constraints.c}/x${o.constraints.x} · functions ${o.functions} · aggregates ${o.aggregates} · triggers ${o.triggers} · sequences ${o.sequences} · views ${o.views} · materialized views ${o.materializedViews} · domains ${o.domains}`;
  const files = m.artifacts.map((a) => `${a.file}: ${formatBytes(a.bytes)}, sha256 ${a.sha256}`).join('\n');
  const text = `Row counts and object counts taken in the dump's own snapshot (${m.snapshotId}):\n\`\`\`${lines.join('\n')}${m.verification.tables.length > top.length ? `\n… ${m.verification.tables.length - top.length} more tables` : ''}\`\`\`\n${objects}\n\`\`\`${files}\`\`\`${m.globals.note ? `\nGlobals: ${escapeMrkdwn(m.globals.note)}` : ''}`;
  return { text: text.slice(0, 3000), blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 3000) } }] };
}

export function failureDetails(detail: string): ChannelMessage {
  const tail = detail.split('\n').slice(-12).join('\n').slice(-2500);
  return { text: `Details:\n\`\`\`${tail}\`\`\`` };
}
