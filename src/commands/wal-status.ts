import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import { formatDuration } from '../format.ts';
import { slackDate } from '../notifications/slack-time.ts';
import { readWalState } from '../jobs/wal-state.ts';

/**
 * `/backup status`'s lines for point-in-time recovery: each `pitr` target's WAL stream as its worker last wrote
 * it — up or down and since when, the newest segment archived and how long ago, or why it is not running.
 */
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
  }
  return lines.length ? ['*Point-in-time recovery (WAL archive)*', ...lines] : [];
}
