import type { Queue } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';
import type { Config } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { writeDriftAck } from '../health/index.ts';
import type { Logger } from '../logger.ts';
import { slackDate } from '../notifications/slack-time.ts';
import type { Block, Notifier } from '../notifications/types.ts';
import { BackupIdSchema } from '../storage/index.ts';
import type { Reply } from './backup-command.ts';
import type { ChannelClick } from './checklist-action.ts';

/** A click on a button in a channel message (its value in `value`), with the message as the clicker's client showed it. */
export interface ButtonClick extends ChannelClick {
  blocks: Block[];
}

export interface DriftAckDeps {
  config: Config;
  redis: RedisConnection;
  notifier: Pick<Notifier, 'update'>;
  /** The health queue: a check right after the click clears the condition now, not at the next scheduled run. */
  health?: Queue;
  log: Logger;
  now?: () => Date;
}

const nothing = 'Nothing was changed.';

/**
 * "Acknowledge" on a data-drift post (notifications/health-messages.ts): the drift of that backup is known and
 * intended, so the condition clears (health/drift-condition.ts) and is not posted again for it. The guard checks the
 * role (operator) and audits the click; the message then says who acknowledged it and when, without the button.
 */
export function driftAckAction(deps: DriftAckDeps) {
  const now = deps.now ?? (() => new Date());
  return async (click: ButtonClick): Promise<Reply> => {
    const [target, backupId] = click.value.split(' ');
    const log = deps.log.child({ action: 'data-drift-ack', userId: click.userId, target, backupId });
    if (!target || !deps.config.targets.some((t) => t.name === target) || !BackupIdSchema.safeParse(backupId).success || !backupId?.startsWith(`${target}-`)) {
      return { text: `This button names no backup of a configured target. ${nothing}` };
    }
    const at = now();
    try {
      await writeDriftAck(deps.redis, deps.config.queuePrefix, target, { backupId, by: click.userName, at: at.toISOString() });
    } catch (err) {
      log.error({ err }, 'could not record the acknowledgement');
      return { text: `:warning: The acknowledgement could not be recorded (${toUserMessage(err)}). ${nothing}` };
    }
    log.info('data drift acknowledged');
    const said = `:ballot_box_with_check: Acknowledged by <@${click.userId}> at ${slackDate(at, deps.config.timezone)}`;
    const blocks = [...click.blocks.filter((b) => b.type !== 'actions'), { type: 'context', elements: [{ type: 'mrkdwn', text: said }] }];
    const text = `Data drift of ${target} (${backupId}) acknowledged by ${click.userName}`;
    await deps.notifier.update({ channel: click.channel, ts: click.messageTs }, { text, blocks }).catch((err: unknown) => {
      log.warn({ err }, 'could not update the data-drift message');
    });
    await deps.health?.add('health', {}).catch((err: unknown) => log.warn({ err }, 'could not queue a health check; the next scheduled one clears it'));
    return { text: `${text}.`, quiet: true };
  };
}
