import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { escapeMrkdwn, formatDuration } from '../format.ts';
import { rpoCondition } from '../health/index.ts';
import { slackDate } from '../notifications/slack-time.ts';
import { readWalState } from '../jobs/wal-state.ts';
import { listBaseBackups } from '../postgres/pitr/pitr-restore.ts';
import { recoverableWal } from '../postgres/pitr/partial-store.ts';
import { recoverableWindow } from '../postgres/pitr/window.ts';

/**
 * `/backup status`'s lines for point-in-time recovery: each `pitr` target's WAL stream as its worker last wrote
 * it — up or down and since when, the newest segment archived and how long ago, or why it is not running.
 */
/** "recoverable to any moment from … to …", the gap that ends it, or why nothing is recoverable yet. */
async function windowLine(config: Config, target: string): Promise<string> {
  if (config.s3?.mode === 'primary') return 'recoverable window: not known (the WAL archive needs local storage in this version)';
  const [bases, wal] = await Promise.all([listBaseBackups(config.backupDir, target), recoverableWal(config.backupDir, target)]);
  const w = recoverableWindow(bases, wal);
  if (!w)
    return bases.length === 0
      ? `nothing recoverable yet: no base backup (\`pg-backup-bot base-backup ${target}\`)`
      : 'nothing recoverable yet: no WAL archived after the base backup';
  const range = `recoverable to any moment from ${slackDate(w.from, config.timezone)} to ${slackDate(w.to, config.timezone)}`;
  return w.gaps.length
    ? `${range} — :rotating_light: a gap ends it: segment ${w.gaps[0]} is missing${w.gaps.length > 1 ? ` (+${w.gaps.length - 1} more)` : ''}`
    : range;
}

export async function walStatusLines(config: Config, redis: Redis, now = new Date()): Promise<string[]> {
  const targets = config.targets.filter((t) => t.pitr);
  const lines: string[] = [];
  for (const t of targets) {
    const s = await readWalState(redis, config.queuePrefix, t.name);
    if (!s) {
      lines.push(`• *${t.name}*: no worker has started its WAL stream yet`);
      continue;
    }
    const since = slackDate(s.since, config.timezone);
    const last = s.lastArchived
      ? `newest archived ${s.lastArchived}, ${formatDuration(Math.max(0, now.getTime() - Date.parse(s.lastArchivedAt ?? s.since)))} ago`
      : 'nothing archived yet';
    const head = s.receiver === 'up' ? `:white_check_mark: streaming since ${since}` : `:rotating_light: WAL stream ${s.receiver.toUpperCase()} since ${since}`;
    lines.push(`• *${t.name}* (slot \`${t.pitr?.slot}\`): ${head}; ${last}${s.error ? `; ${s.error}` : ''}`);
    lines.push(`   ${await windowLine(config, t.name)}`);
    // The RPO as the health check judges it: measured against the archive, not the worker's disk.
    const rpo = rpoCondition(t.name, now, s);
    lines.push(`   ${rpo.status === 'ok' ? '' : ':rotating_light: '}RPO: ${escapeMrkdwn(rpo.evidence)}`);
  }
  return lines.length ? ['*Point-in-time recovery (WAL archive)*', ...lines] : [];
}
