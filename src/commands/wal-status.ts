import { walOffsiteCondition } from '../health/offsite-condition.ts';
import type { RedisConnection } from '../redis-client.ts';
import type { Config } from '../config.ts';
import { escapeMrkdwn, formatDuration } from '../format.ts';
import { slackDate } from '../notifications/slack-time.ts';
import { readWalState } from '../jobs/wal-state.ts';
import { noWindowSentence, readArchiveFacts, rpoCondition, type WalArchiveFacts } from '../health/index.ts';
import { followedText, priorText, shownRange } from '../postgres/pitr/window.ts';

/** The window as Slack shows it: each reader's own time zone, to the second (a recovery target is a second). */
const when = (config: Config, d: Date) => slackDate(d, config.timezone, '{date_short_pretty} {time_secs}');

/**
 * "recoverable to any moment from … to …", with the gap that ends it or an older one it starts after; or why
 * nothing is recoverable yet. Shared by `/backup status`, `/backup list` and the App Home.
 */
export function windowText(config: Config, target: string, a: WalArchiveFacts, time: (d: Date) => string = (d) => when(config, d)): string {
  if (a.notKept) return `recoverable window: not known (${a.notKept})`;
  if (a.unreadable) return `:rotating_light: the WAL archive could not be read: ${a.unreadable}`;
  const first = a.gap ?? a.gaps[0];
  const more = a.gaps.length > 1 ? ` (+${a.gaps.length - 1} more)` : '';
  const retake = `take a new base backup (\`pg-backup-bot base-backup ${target}\`): the window starts again after it`;
  if (!a.window) {
    if (first) return `:rotating_light: nothing recoverable: segment ${first} is missing${more}; ${retake}`;
    return noWindowSentence(target, a);
  }
  // After a promotion: the moments before it, along the old timeline (window.ts priorTimeline).
  const prior = a.priorTimeline ? ` (and ${priorText(target, a.priorTimeline, shownRange(a.priorTimeline, time))})` : '';
  const range = `recoverable to any moment ${shownRange(a.window, time)}${followedText(a.followed)}${prior}`;
  if (a.switched)
    return `${range} — :rotating_light: the server moved to timeline ${a.switched.timeline} at ${time(a.switched.at)}, and no base backup was taken on it yet: nothing written since can be recovered; take one now (\`/backup now --physical ${target}\`)`;
  if (!first) return range;
  if (!a.reachesNewest) return `${range} — :rotating_light: a gap ends it: segment ${first} is missing${more}; ${retake}`;
  // "before it" when the older stretch ends at the gap just named; with more gaps, the one that ends it.
  const endsAt = a.earlier?.gap && a.earlier.gap !== first ? ` before segment ${a.earlier.gap}` : ' before it';
  const before = a.earlier ? `, and ${shownRange(a.earlier, time)}${endsAt}` : '';
  return `${range} (after a gap: segment ${first} is missing${more}${before})`;
}

/**
 * `/backup status`'s lines for point-in-time recovery: each `pitr` target's WAL stream as its worker last wrote
 * it — up or down and since when, the newest segment archived and how long ago, or why it is not running.
 */
export async function walStatusLines(config: Config, redis: RedisConnection, now = new Date()): Promise<string[]> {
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
      ? `newest whole segment archived ${s.lastArchived}, ${formatDuration(Math.max(0, now.getTime() - Date.parse(s.lastArchivedAt ?? s.since)))} ago`
      : s.offsiteRole === 'primary' && s.offsiteError
        ? 'newest archived: not known, the bucket cannot be read'
        : 'nothing archived yet';
    const on = s.holder ? ` on ${s.holder}` : '';
    const head =
      s.receiver === 'up' ? `:white_check_mark: streaming since ${since}${on}` : `:rotating_light: WAL stream ${s.receiver.toUpperCase()} since ${since}${on}`;
    lines.push(`• *${t.name}* (slot \`${t.pitr?.slot}\`): ${head}; ${last}${s.error ? `; ${s.error}` : ''}`);
    lines.push(`   ${windowText(config, t.name, await readArchiveFacts(config, t.name))}`);
    // The RPO as the health check judges it: measured against the archive, not the receiver's spool.
    const rpo = rpoCondition(t.name, now, s);
    lines.push(`   ${rpo.status === 'ok' ? '' : ':rotating_light: '}RPO: ${escapeMrkdwn(rpo.evidence)}`);
    // The copy in S3 (S3_MODE=copy): what a restore on a new server reaches if the worker's disk is lost; or, with S3
    // as the primary store, the spool's uploads, which are the archive itself.
    const offsite = walOffsiteCondition(t.name, now, s);
    const label = s.offsiteRole === 'primary' ? 'S3' : 'Off-site';
    if (offsite) lines.push(`   ${offsite.status === 'ok' ? '' : ':warning: '}${label}: ${escapeMrkdwn(offsite.evidence)}`);
  }
  return lines.length ? ['*Point-in-time recovery (WAL archive)*', ...lines] : [];
}

/** `/backup list`'s lines for point-in-time recovery: each `pitr` target's window (of one target when named). */
export async function walWindowLines(config: Config, only?: string): Promise<string[]> {
  const targets = config.targets.filter((t) => t.pitr && (only === undefined || t.name === only));
  const lines = await Promise.all(targets.map(async (t) => `• *${t.name}*: ${windowText(config, t.name, await readArchiveFacts(config, t.name))}`));
  return lines.length ? ['*Point-in-time recovery*', ...lines] : [];
}
