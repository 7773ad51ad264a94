import type { Config } from '../config.ts';
import { errorLogFields, toUserMessage } from '../errors.ts';
import { withDeadline } from '../jobs/producers.ts';
import type { Logger } from '../logger.ts';
import type { Block } from '../notifications/types.ts';
import { dropRestoredDatabase, restoredDatabases } from '../restored-databases.ts';
import type { Storage } from '../storage/index.ts';
import type { Reply } from './backup-command.ts';

/** The button that drops a kept `…_replaced_…` database, and the one that keeps it (value: the database's name). */
export const DROP_REPLACED_ACTION = 'restore_drop_replaced';
export const KEEP_REPLACED_ACTION = 'restore_keep_replaced';

/** The sentence both surfaces say before a replaced database is dropped (the CLI asks for --yes after it). */
export const replacedWarning = (database: string) =>
  `"${database}" is a database as it was before a replacement: the only copy of whatever was written to it after the backup.`;

/**
 * `/restore drop <…_replaced_…>`: nothing is dropped yet. The answer says what the database is and asks for a click,
 * as the CLI asks for --yes (QA: Slack dropped it at once, where the CLI refused without --yes).
 */
export function dropReplacedPrompt(database: string): Reply {
  const text = `:warning: ${replacedWarning(database).replace(/^"([^"]+)"/, '`$1`')} Drop it?`;
  const blocks: Block[] = [
    { type: 'section', text: { type: 'mrkdwn', text } },
    {
      type: 'actions',
      block_id: `restore_drop_${database}`.slice(0, 255),
      elements: [
        {
          type: 'button',
          action_id: DROP_REPLACED_ACTION,
          style: 'danger',
          text: { type: 'plain_text', text: `Drop ${database}`.slice(0, 75) },
          value: database,
          confirm: {
            title: { type: 'plain_text', text: 'Drop the database?' },
            text: { type: 'mrkdwn', text: `Drop \`${database}\` for good? Nothing written to it after the backup is kept anywhere else.`.slice(0, 300) },
            confirm: { type: 'plain_text', text: 'Drop' },
            deny: { type: 'plain_text', text: 'Keep it' },
          },
        },
        { type: 'button', action_id: KEEP_REPLACED_ACTION, text: { type: 'plain_text', text: 'Keep it' }, value: database },
      ],
    },
  ];
  return { text, blocks };
}

/**
 * `/restore drop` of a `…_replaced_…` name: the question when the database is there; else dropRestoredDatabase's own
 * answer (gone already, not a restore's, its server's variable unset), with nothing to click.
 */
export async function dropReplacedAsked(deps: { config: Config; storage: Storage }, database: string): Promise<Reply> {
  // One deadline for both steps: Slack waits 3 s for the answer.
  const answer = async (): Promise<Reply> =>
    (await restoredDatabases(deps)).some((d) => d.name === database) ? dropReplacedPrompt(database) : { text: await dropRestoredDatabase(deps, database) };
  return withDeadline(2500, answer(), 'looking the database up', 'postgres');
}

/** The click on either button (guarded: admins only, as `/restore drop` of such a database). */
export function dropReplacedAction(deps: { config: Config; storage: Storage; log: Logger }) {
  return async (click: { userId: string; actionId: string; value: string }): Promise<Reply> => {
    if (click.actionId === KEEP_REPLACED_ACTION) return { text: `Kept \`${click.value}\`; nothing was dropped.` };
    try {
      // The click is acknowledged already: no 3 s to keep. A DROP DATABASE (a checkpoint on PostgreSQL 14 and older)
      // is answered when it is done, not called "not started" at 2.5 s while it goes on (second reader).
      return { text: await withDeadline(120_000, dropRestoredDatabase(deps, click.value), 'dropping the database', 'postgres') };
    } catch (err) {
      deps.log.child({ action: click.actionId, userId: click.userId }).warn(errorLogFields(err), 'dropping a replaced database failed');
      return { text: `:warning: ${toUserMessage(err)}` };
    }
  };
}
