import type { AuditLog } from '../audit.ts';
import { ChecklistBusy, nextVersion, type ChecklistStore } from '../checklists/state.ts';
import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { applyTick, checklistMessage, chunkItems, parseChecklistBlockId, type TickChange } from '../notifications/checklists.ts';
import type { MessageRef, Notifier } from '../notifications/types.ts';
import type { Reply } from './backup-command.ts';

/** Who clicked what on a channel message (checkboxes, a button). */
export interface ChannelClick {
  userId: string;
  userName: string;
  actionId: string;
  /** For the audit trail: what was clicked, in one line. */
  value: string;
  channel: string;
  messageTs: string;
}

/** A click on a checklist's checkboxes: the element's whole selection as the clicker's client showed it. */
export interface CheckboxClick extends ChannelClick {
  blockId: string;
  selected: string[];
}

export interface ChecklistActionDeps {
  store: ChecklistStore;
  /** Updates the checklist message in place (the bot token's chat.update). */
  notifier: Pick<Notifier, 'update'>;
  audit: AuditLog;
  log: Logger;
  now?: () => Date;
  /** The configured time zone: a tick shows its time in it (default UTC). */
  timezone?: string;
}

const nothing = 'Nothing was changed.';

function auditChange(deps: ChecklistActionDeps, click: CheckboxClick, kind: string, ref: MessageRef, c: TickChange) {
  return deps.audit.append({
    kind: 'action',
    userId: click.userId,
    userName: click.userName,
    what: 'checklist-item',
    args: `${kind} ${c.itemId} ${c.action} (message ${ref.channel}/${ref.ts})`,
    decision: 'allowed',
    role: null,
    jobId: null,
    result: c.previous ? `${c.action} at ${c.at}, taking back <@${c.previous.by}>'s tick of ${c.previous.at}` : `${c.action} at ${c.at}`,
  });
}

/**
 * Applies a tick to the stored checklist and updates the message to show who and when. Load, apply, save and
 * update run under the message's lock, and the save is compare-and-set on the version: concurrent ticks queue up
 * instead of overwriting each other. Only what this click changed relative to the copy it was made on (the
 * version in its block_id) is applied, so a stale copy never unticks a newer tick. Every change is audited.
 * The answer is quiet when all went well: the updated message is the answer.
 */
export function checklistTickAction(deps: ChecklistActionDeps) {
  const now = deps.now ?? (() => new Date());
  return async (click: CheckboxClick): Promise<Reply> => {
    const ref: MessageRef = { channel: click.channel, ts: click.messageTs };
    const log = deps.log.child({ action: 'checklist-tick', userId: click.userId, message: `${ref.channel}/${ref.ts}` });
    const block = parseChecklistBlockId(click.blockId);
    if (!block) return { text: `This is not a checklist of this bot. ${nothing}` };
    try {
      return await deps.store.withLock(ref, async (): Promise<Reply> => {
        // The lock makes a conflict unlikely; the compare-and-set covers a lock that expired under a slow holder.
        for (let attempt = 0; attempt < 3; attempt++) {
          const state = await deps.store.load(ref);
          if (!state || state.kind !== block.kind) {
            // Its state is stored just after the post: a message under a minute old is not one that expired.
            if (!state && now().getTime() / 1000 - Number(ref.ts) < 60)
              return { text: `This checklist is still being set up; tick again in a moment. ${nothing}` };
            return { text: `This checklist is no longer tracked (they are kept 35 days), so ticks on it cannot be recorded. ${nothing}` };
          }
          const shown = state.shown[String(block.version)];
          const chunk = chunkItems(state.items)[block.chunk];
          if (!shown || !chunk) return { text: `You clicked an out-of-date copy of this checklist; reload Slack and tick again. ${nothing}` };
          const at = now().toISOString();
          const { items, changes } = applyTick(state.items, click.selected, click.userId, at, { scope: chunk.map((i) => i.id), shown });
          // A new version even without a change: new block ids make the clicker's client drop a box it ticked locally
          // on a bot-verified item or a stale copy, and show the state as it is.
          const next = nextVersion(state, items);
          if (!(await deps.store.save(ref, state.version, next))) continue;
          for (const c of changes) {
            await auditChange(deps, click, state.kind, ref, c).catch((err: unknown) => log.error({ err }, 'could not append the tick to the audit trail'));
          }
          log.info({ changes: changes.map((c) => `${c.itemId} ${c.action}`), version: next.version }, 'checklist ticked');
          try {
            await deps.notifier.update(ref, checklistMessage(next.kind, next.items, next.version, next.subtitle ?? undefined, deps.timezone));
          } catch (err) {
            log.warn({ err }, 'could not update the checklist message');
            return { text: `Your change was recorded, but Slack did not take the updated message (${toUserMessage(err)}); the next tick will show it.` };
          }
          const said = changes.map((c) => `${c.action} ${c.itemId}`).join(', ');
          return { text: said ? `Checklist ${said}.` : `No change: that item is the bot's or was already so.`, quiet: true };
        }
        return { text: `Others changed this checklist at the same moment; tick again. ${nothing}` };
      });
    } catch (err) {
      if (err instanceof ChecklistBusy) return { text: `Others are ticking this checklist right now; tick again in a moment. ${nothing}` };
      log.error({ err }, 'checklist tick failed');
      return { text: `:warning: ${toUserMessage(err)} ${nothing}` };
    }
  };
}
