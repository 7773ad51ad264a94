import { switchLabel } from '../health/wal-conditions.ts';
import type { ConditionResult, HealthCondition } from '../health/index.ts';
import type { StoredCondition } from '../health/index.ts';
import { escapeMrkdwn, formatTime } from '../format.ts';
import type { Block, ChannelMessage } from './types.ts';

/** Pure builders for health conditions: a condition that starts failing, one that clears, and the overview. */

// Every condition has both (Record over HealthCondition): a new one without them does not compile.
const LABEL: Record<HealthCondition, string> = {
  stale: 'backup too old',
  damaged: 'stored backups damaged',
  size: 'backup size anomaly',
  'data-drift': 'data drift: tables lost rows',
  slow: 'backup too slow',
  disk: 'backup disk short of space',
  'backup-failing': 'last backup failed',
  'restore-test-failing': 'last restore test failed',
  unencrypted: 'backup not encrypted',
  'wal-stream': 'WAL stream down',
  'wal-gap': 'gap in the WAL archive',
  'wal-slot': 'replication slot holding WAL',
  'wal-offsite': 'WAL archive not reaching S3',
  'base-backup': 'base backup failed or too old',
  'pitr-test-failing': 'last PITR restore test failed',
  rpo: 'RPO not within its objective',
  unchecked: 'health could not be checked',
};

/**
 * A failure's name: its condition's, or its episode's where that names another thing (wal-gap's `timeline-N`, a
 * timeline no base backup was taken on: no gap is missing). The same for the failure and, from the stored episode,
 * for its clearing.
 */
export function conditionLabel(c: string, episode?: string | null): string {
  const timeline = c === 'wal-gap' ? /^timeline-(\d+)$/.exec(episode ?? '')?.[1] : undefined;
  return timeline ? switchLabel(Number(timeline)) : (LABEL[c as HealthCondition] ?? c);
}

/** What each condition watches, said neutrally: the overview's passing lines ("✅ last backup: last run succeeded"). */
const NAME: Record<HealthCondition, string> = {
  stale: 'backup age',
  damaged: 'stored backups',
  size: 'backup size',
  'data-drift': 'data drift',
  slow: 'backup duration',
  disk: 'backup disk',
  'backup-failing': 'last backup',
  'restore-test-failing': 'last restore test',
  unencrypted: 'encryption',
  'wal-stream': 'WAL stream',
  'wal-gap': 'WAL archive',
  'wal-slot': 'replication slot',
  'wal-offsite': 'WAL archive in S3',
  'base-backup': 'base backup',
  'pitr-test-failing': 'last PITR restore test',
  rpo: 'RPO',
  unchecked: 'health check',
};

/** A condition as a line of an overview reads it: the failure's label when failing, its neutral name when not. */
export const conditionHeading = (r: Pick<ConditionResult, 'condition' | 'status' | 'episode'>) =>
  r.status === 'ok' ? NAME[r.condition] : conditionLabel(r.condition, r.episode);

export function conditionFailing(target: string, r: ConditionResult, escalation: string): ChannelMessage {
  const icon = r.severity === 'warning' ? ':warning:' : ':rotating_light:';
  const label = conditionLabel(r.condition, r.episode);
  const text = `${icon} *${target}*: ${label} — ${escapeMrkdwn(r.evidence)}`;
  return {
    text: `${target}: ${label} — ${r.evidence}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${r.severity} · ${escalation}` }] },
      ...(r.acknowledge ? [acknowledgeBlock(target, r.acknowledge)] : []),
    ],
  };
}

/** The button that acknowledges a data drift (commands/drift-ack.ts); its value names the target and the newer backup. */
export const DRIFT_ACK_ACTION = 'data-drift-ack';

function acknowledgeBlock(target: string, backupId: string): Block {
  return {
    type: 'actions',
    block_id: `drift-ack:${backupId}`,
    elements: [
      {
        type: 'button',
        action_id: DRIFT_ACK_ACTION,
        text: { type: 'plain_text', text: 'Acknowledge' },
        value: `${target} ${backupId}`,
        confirm: {
          title: { type: 'plain_text', text: 'Acknowledge this drift?' },
          text: { type: 'plain_text', text: 'The drift clears now and is not posted again for this backup.' },
          confirm: { type: 'plain_text', text: 'Acknowledge' },
          deny: { type: 'plain_text', text: 'Cancel' },
        },
      },
    ],
  };
}

/**
 * Data drift compares each backup with the one before: it clears when the newest shows no new loss, not when the
 * rows come back. Said so, or a green "cleared" would read as the data restored and the restore commands be dropped.
 */
const NOT_BACK: Partial<Record<string, string>> = {
  'data-drift': ' Rows lost earlier are not back: restore them with the commands posted when the loss was found.',
};

/** `previousEpisode`: the cleared failure's, which names it (conditionLabel). */
export function conditionCleared(
  target: string,
  r: ConditionResult,
  since: string | null,
  resolved: string | null,
  previousEpisode?: string | null,
): ChannelMessage {
  const named = conditionLabel(r.condition, previousEpisode);
  const text = `:white_check_mark: *${target}*: ${named} cleared — ${escapeMrkdwn(r.evidence)}${NOT_BACK[r.condition] ?? ''}`;
  return {
    text: `${target}: ${named} cleared`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${since ? `failing since ${formatTime(since)} · ` : ''}${resolved ?? 'no page was open'}` }] },
    ],
  };
}

/**
 * The backup disk's own line for `/backup health`, while it fails: the one page behind every target's ⚠️ disk line
 * (QA: holding the page `…/disk`, nothing in Slack said it was one disk). Empty while it has room.
 */
export function diskOverviewLine(subject: string, stored: StoredCondition | undefined): string {
  if (stored?.status !== 'failing') return '';
  return `:warning: *Backup disk ${escapeMrkdwn(subject)}* (one page for every target that writes to it): ${escapeMrkdwn(stored.evidence)} _(since ${formatTime(stored.since)})_`;
}

/** `/backup health`: every condition of every target, with its evidence and since when it is in that state. */
/** What one Slack answer holds comfortably (its text is cut at 40,000 characters; the bot's answers stay near 4,000). */
const ANSWER_CHARS = 3900;

type TargetHealth = { target: string; results: ConditionResult[]; stored: Record<string, StoredCondition> };

/**
 * `/backup health`: every condition of every target with its evidence, while that fits one answer. A fleet's does
 * not (200 targets made 190,000 characters): then the healthy targets are counted, and only the conditions that
 * fail are shown, target by target, as many as fit; the rest are named. `/backup health <target>` shows one in full.
 */
export function healthOverview(perTarget: TargetHealth[], limit = ANSWER_CHARS): string {
  const full = perTarget.map((t) => `*${t.target}*\n${t.results.map((r) => conditionLine(r, t.stored)).join('\n')}`).join('\n\n');
  if (full.length <= limit) return full;
  const troubled = perTarget.filter((t) => t.results.some((r) => r.status !== 'ok'));
  const head = `*${perTarget.length} targets:* ${perTarget.length - troubled.length} healthy, ${troubled.length} with problems. Every condition of one target: \`/backup health <target>\`.`;
  const blocks: string[] = [];
  let used = head.length;
  for (const [i, t] of troubled.entries()) {
    const block = `*${t.target}*\n${t.results
      .filter((r) => r.status !== 'ok')
      .map((r) => conditionLine(r, t.stored))
      .join('\n')}`;
    const rest = troubled.slice(i + 1);
    // Room is kept for the line naming the targets not shown.
    if (used + block.length + 2 > limit - 300) {
      const names = troubled.slice(i).map((x) => x.target);
      const shown = names.join(', ').slice(0, 250);
      blocks.push(`_…and ${names.length} more with problems: ${shown}${shown.length < names.join(', ').length ? '…' : ''}_`);
      break;
    }
    blocks.push(block);
    used += block.length + 2;
    if (rest.length === 0) break;
  }
  return [head, ...blocks].join('\n\n');
}

function conditionLine(r: ConditionResult, stored: Record<string, StoredCondition>): string {
  const since = stored[r.condition]?.status === r.status ? stored[r.condition]?.since : undefined;
  // A quiet failure (nothing paged for the target: a first backup not yet due, a slot that could not be read, a disk
  // the storage-wide condition pages once for all targets) is a warning to read.
  // Passing for want of anything to judge (no test recorded, no backup yet) is not shown as a check that passed.
  const icon =
    r.status !== 'ok' ? (r.severity === 'warning' || r.quiet ? ':warning:' : ':rotating_light:') : r.unjudged ? ':white_circle:' : ':white_check_mark:';
  return `${icon} ${conditionHeading(r)}: ${escapeMrkdwn(r.evidence)}${since ? ` _(since ${formatTime(since)})_` : ''}`;
}
