import type { WalArchiveFacts } from '../health/wal-types.ts';
import { windowTime } from '../health/wal-conditions.ts';
import { followedText, shownRange } from '../postgres/pitr/window-text.ts';
import type { ChannelMessage } from './types.ts';

type Promoted = Required<Pick<WalArchiveFacts, 'promotion'>> & Pick<WalArchiveFacts, 'window' | 'followed' | 'priorTimeline'>;

/**
 * What the channel hears once when a target's server was promoted and the WAL archive follows it
 * (workers/promotion-notice.ts). A planned failover: nothing the archive held was lost, and recovery reads the old
 * timeline's base backup until one is taken on the new one; whether the old primary wrote past the switch is said only
 * as far as the archive knows (second reader: "nothing was lost" after a crash whose last WAL never reached it). A
 * crash failover to a standby that was behind: the old primary wrote WAL the new server never received, and the
 * archive holds it: the one place those commits still are.
 */
export function promotionNotice(target: string, a: Promoted): ChannelMessage {
  const p = a.promotion;
  const window = a.window ? `recoverable to any moment ${shownRange(a.window, windowTime)}${followedText(a.followed)}` : '';
  const arrived = `its history file archived at ${windowTime(p.at)}`;
  const prior = a.priorTimeline?.forkedAt ? a.priorTimeline : null;
  const lines = prior
    ? [
        `:warning: *${target}*: its server was promoted to timeline ${p.timeline}, forked from timeline ${p.from} at ${p.switchLsn} (${arrived}). ` +
          `The old primary had written WAL past that point which the new server never received (a standby behind its primary when it failed): any commit in it is missing from the live database.`,
        `The archive holds it: timeline ${prior.timeline} is recoverable ${shownRange(prior, windowTime)}. ` +
          `\`pg-backup-bot restore-pitr ${target} --time=latest --timeline=${prior.timeline} --data-dir=DIR\` recovers the old primary's last state into a data directory of its own, to compare and copy back by hand.`,
        `The WAL archive follows timeline ${p.timeline}${window ? `: ${window}` : ''}.`,
      ]
    : [
        `:twisted_rightwards_arrows: *${target}*: its server was promoted to timeline ${p.timeline}, which left timeline ${p.from} at ${p.switchLsn} (${arrived}). ` +
          `The WAL archive follows it${window ? `: ${window}` : ''}. No WAL of timeline ${p.from} past that point reached the archive.`,
      ];
  if (a.followed)
    lines.push(
      `Until a base backup is taken on timeline ${p.timeline}, a recovery replays all WAL since the base backup taken on timeline ${a.followed.from}: \`/backup now --physical ${target}\` takes one now (the schedule's next one otherwise).`,
    );
  const text = lines.join('\n');
  return { text: text.replace(/[*`]/g, ''), blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 2900) } }] };
}
