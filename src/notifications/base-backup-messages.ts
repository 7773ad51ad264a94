import { escapeMrkdwn, formatBytes, formatDuration } from '../format.ts';
import type { BaseWal } from '../postgres/pitr/base-wal.ts';
import type { Block, ChannelMessage } from './types.ts';

/** Pure builders for a base backup's channel message: running, then the verdict (notifications/backup-messages.ts's twin). */

export interface BaseBackupRequestInfo {
  target: string;
  jobId: string;
  requestedBy: { source: string; userId?: string | undefined; userName?: string | undefined };
  label?: string | null;
  scheduled?: boolean;
}

/** What the verdict shows of a finished base backup (postgres/pitr/base-backup.ts's record). */
export interface BaseBackupShown {
  id: string;
  bytes: number;
  rawBytes: number;
  sha256: string;
  encryption: 'age' | 'none';
  startedAt: string;
  finishedAt: string;
  startLsn: string;
  endLsn: string;
  timeline: number;
  file: string;
  pgBasebackupVersion: string;
}

function context(text: string): Block {
  return { type: 'context', elements: [{ type: 'mrkdwn', text }] };
}

/** `job … · base backup (point-in-time recovery), scheduled by \`base-backup\` · <label> · requested by …`. */
function origin(req: BaseBackupRequestInfo): string {
  const r = req.requestedBy;
  const who = r.userId ? `<@${r.userId}>` : req.scheduled ? 'the schedule' : r.userName ? escapeMrkdwn(r.userName) : r.source;
  const kind = req.scheduled ? ', scheduled by `base-backup`' : r.userId ? ', on demand' : '';
  return `job \`${req.jobId}\` · base backup (point-in-time recovery)${kind}${req.label ? ` · ${escapeMrkdwn(req.label)}` : ''} · requested by ${who}`;
}

export function baseBackupStarted(req: BaseBackupRequestInfo, progress?: string): ChannelMessage {
  const title = `:hourglass_flowing_sand: Base backup of *${req.target}* running`;
  return {
    text: `Base backup of ${req.target} running (job ${req.jobId})`,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: progress ? `${title} — ${progress}` : title } }, context(origin(req))],
  };
}

/** `inS3`: streamed into the bucket (S3_MODE=primary), where it is size-checked, not read back. */
export function baseBackupSucceeded(req: BaseBackupRequestInfo, b: BaseBackupShown, wal?: BaseWal, inS3 = false): ChannelMessage {
  const ms = Date.parse(b.finishedAt) - Date.parse(b.startedAt);
  const encryption = b.encryption === 'age' ? 'encrypted with age' : ':warning: NOT encrypted (no BACKUP_ENCRYPTION_RECIPIENT)';
  const fields = [
    `*Base backup id*\n\`${b.id}\``,
    `*Size*\n${formatBytes(b.bytes)} stored (cluster ${formatBytes(b.rawBytes)})`,
    `*Duration*\n${formatDuration(ms)}`,
    `*WAL start → end*\n\`${b.startLsn}\` → \`${b.endLsn}\` (timeline ${b.timeline})`,
    `*Encryption*\n${encryption}`,
    `*sha256*\n\`${b.sha256.slice(0, 12)}…\` ${inS3 ? 'hashed as uploaded to S3, size checked there' : 'read back and matched'}`,
    ...(wal === undefined
      ? []
      : wal.state === 'archived'
        ? ['*Recoverable*\nto any moment after it ended: its WAL is archived']
        : [`*Recoverable*\n:warning: not yet: WAL segment \`${wal.missing}\` is not archived (is the WAL stream up? \`/backup status\`)`]),
  ];
  return {
    text: `Base backup of ${req.target} succeeded: ${b.id}, ${formatBytes(b.bytes)} in ${formatDuration(ms)}, WAL ${b.startLsn} to ${b.endLsn}, ${b.encryption === 'age' ? 'encrypted' : 'NOT encrypted'}${wal && wal.state !== 'archived' ? `; NOT recoverable yet: WAL segment ${wal.missing} is not archived` : ''}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:white_check_mark: Base backup of *${req.target}* succeeded` } },
      { type: 'section', fields: fields.map((text) => ({ type: 'mrkdwn', text })) },
      context(`${origin(req)} · recovery replays the archived WAL from \`${b.startLsn}\` on`),
    ],
  };
}

export function baseBackupFailed(req: BaseBackupRequestInfo, reason: string, escalation: string): ChannelMessage {
  return {
    text: `Base backup of ${req.target} FAILED: ${reason}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:x: Base backup of *${req.target}* failed: ${escapeMrkdwn(reason)}` } },
      context(`${origin(req)} · no base backup was stored · ${escalation}`),
    ],
  };
}

/** Thread detail under the verdict: where it is, its whole sha256, the tool, and how a restore uses it. */
export function baseBackupDetails(root: string, b: BaseBackupShown & { target: string }): ChannelMessage {
  const text = [
    `\`\`\`${root}/${b.target}/_base/${b.id}/${b.file}`,
    // In S3 (S3_MODE=primary) the bytes are hashed on their way up and the object's size checked, not read back.
    `sha256 ${b.sha256} (${b.bytes} bytes, ${root.startsWith('s3://') ? 'hashed as uploaded, size checked in S3' : 'read back after writing'})`,
    `WAL ${b.startLsn} to ${b.endLsn} on timeline ${b.timeline}, from the WAL archive`,
    `${b.pgBasebackupVersion}\`\`\``,
    `Restore to a point in time after ${b.finishedAt}: \`pg-backup-bot restore-pitr ${b.target} --time=… --data-dir=…\` on the new host.`,
  ].join('\n');
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}
