import { toUserMessage } from '../errors.ts';
import type { App, BlockAction, BlockButtonAction, CheckboxesAction } from '@slack/bolt';
import type { Queue } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';
import type { Config } from '../config.ts';
import type { ChecklistJob } from '../jobs/checklist-data.ts';
import type { BackupJobData, RestoreJobData, RestoreTestJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import type { Storage } from '../storage/index.ts';
import type { RunLog } from '../health/index.ts';
import type { HealthState } from '../health/index.ts';
import { backupCommand, type CommandInput, type Reply } from './backup-command.ts';
import type { SchedulerQueues } from '../schedules/index.ts';
import type { BaseBackupJobData } from '../jobs/base-backup-data.ts';
import type { Deps } from '../deps.ts';
import { CANCEL_ACTION, CONFIRM_ACTION, restoreCommand, restoreConfirmAction } from './restore-command.ts';
import { DROP_REPLACED_ACTION, dropReplacedAction, KEEP_REPLACED_ACTION } from './drop-replaced.ts';
import { restoreTestCommand } from './restore-test-command.ts';
import { backupNeed, guardAction, guardCommand, restoreNeed, restoreTestNeed } from './guard.ts';
import { parseBackupText } from './backup-text.ts';
import { parseRestoreTestText, parseRestoreText } from './restore-text.ts';
import type { GroupResolver } from './roles.ts';
import type { AuditLog } from '../audit.ts';
import { CHECKLIST_ACTION_ID } from '../notifications/checklists.ts';
import type { Notifier } from '../notifications/types.ts';
import { createChecklistStore } from '../checklists/state.ts';
import { checklistTickAction, type CheckboxClick } from './checklist-action.ts';
import { driftAckAction, type ButtonClick } from './drift-ack.ts';
import { DRIFT_ACK_ACTION } from '../notifications/health-messages.ts';
import { withChannelWarning } from './channel-warning.ts';
import type { Block } from '../notifications/types.ts';

export { backupCommand, type CommandInput, type Reply } from './backup-command.ts';
export { parseBackupText, BACKUP_USAGE } from './backup-text.ts';

export type CommandHandler = (input: CommandInput) => Promise<Reply>;
export type ActionHandler = (click: { userId: string; userName: string; actionId: string; value: string }) => Promise<Reply>;
export type CheckboxHandler = (click: CheckboxClick) => Promise<Reply>;
export type ButtonHandler = (click: ButtonClick) => Promise<Reply>;

export interface CommandDeps {
  config: Config;
  queues: {
    backup: Queue<BackupJobData>;
    restoreTest: Queue<RestoreTestJobData>;
    restore: Queue<RestoreJobData>;
    checklist?: Queue<ChecklistJob>;
    baseBackup?: Queue<BaseBackupJobData>;
    /** A health check after an acknowledged data drift. */
    health?: Queue;
  };
  storage: Storage;
  redis: RedisConnection;
  log: Logger;
  health?: { runs: RunLog; state: HealthState };
  audit: AuditLog;
  /** Slack user-group membership for roles given as group IDs. */
  groups?: GroupResolver;
  /** Updates channel messages in place (checklist ticks); without it checklist ticks are not handled. */
  notifier?: Pick<Notifier, 'update'>;
  /** The queues that hold job schedulers, for `/backup status` (without them it shows the plan alone). */
  schedulers?: SchedulerQueues;
}

/** The bot's whole Slack surface, one line per command. */
export function commandTable(deps: CommandDeps): Record<string, CommandHandler> {
  const table = commands(deps);
  const warned = { redis: deps.redis, prefix: deps.config.queuePrefix, channel: deps.config.slack.channel };
  return Object.fromEntries(Object.entries(table).map(([name, handle]) => [name, withChannelWarning(handle, warned)]));
}

function commands(deps: CommandDeps): Record<string, CommandHandler> {
  const common = { config: deps.config, storage: deps.storage, log: deps.log };
  const guard = { config: deps.config, audit: deps.audit, log: deps.log, ...(deps.groups ? { groups: deps.groups } : {}) };
  return {
    // Each command's text is parsed once: the guard derives the role from the request and hands it to the handler.
    '/backup': guardCommand(
      {
        command: '/backup',
        parse: parseBackupText,
        need: backupNeed,
        handle: backupCommand({
          ...common,
          queue: deps.queues.backup,
          audit: deps.audit,
          ...(deps.health ? { health: deps.health } : {}),
          ...(deps.queues.checklist ? { checklist: deps.queues.checklist } : {}),
          ...(deps.schedulers ? { schedulers: deps.schedulers } : {}),
          ...(deps.queues.baseBackup ? { baseBackup: deps.queues.baseBackup } : {}),
          redis: deps.redis,
        }),
      },
      guard,
    ),
    '/restore-test': guardCommand(
      {
        command: '/restore-test',
        parse: parseRestoreTestText,
        need: restoreTestNeed,
        handle: restoreTestCommand({ ...common, queue: deps.queues.restoreTest }),
      },
      guard,
    ),
    '/restore': guardCommand(
      { command: '/restore', parse: parseRestoreText, need: restoreNeed, handle: restoreCommand({ ...common, queue: deps.queues.restore, redis: deps.redis }) },
      guard,
    ),
  };
}

/** Interactive components (buttons), by action_id. */
export function actionTable(deps: CommandDeps): Record<string, ActionHandler> {
  const guard = { config: deps.config, audit: deps.audit, log: deps.log, ...(deps.groups ? { groups: deps.groups } : {}) };
  const confirm = withChannelWarning(
    guardAction(restoreConfirmAction({ config: deps.config, storage: deps.storage, log: deps.log, queue: deps.queues.restore, redis: deps.redis }), guard),
    { redis: deps.redis, prefix: deps.config.queuePrefix, channel: deps.config.slack.channel },
  );
  const drop = guardAction(dropReplacedAction({ config: deps.config, storage: deps.storage, log: deps.log }), guard);
  return { [CONFIRM_ACTION]: confirm, [CANCEL_ACTION]: confirm, [DROP_REPLACED_ACTION]: drop, [KEEP_REPLACED_ACTION]: drop };
}

/** Checkboxes in channel messages (checklists), by action_id. */
export function checkboxTable(deps: CommandDeps): Record<string, CheckboxHandler> {
  if (!deps.notifier) return {};
  const guard = { config: deps.config, audit: deps.audit, log: deps.log, ...(deps.groups ? { groups: deps.groups } : {}) };
  const store = createChecklistStore(deps.redis, deps.config.queuePrefix);
  return {
    [CHECKLIST_ACTION_ID]: guardAction(
      checklistTickAction({ store, notifier: deps.notifier, audit: deps.audit, log: deps.log, timezone: deps.config.timezone }),
      guard,
    ),
  };
}

/** Buttons in channel messages (a data drift's Acknowledge), by action_id. */
export function buttonTable(deps: CommandDeps): Record<string, ButtonHandler> {
  if (!deps.notifier) return {};
  const guard = { config: deps.config, audit: deps.audit, log: deps.log, ...(deps.groups ? { groups: deps.groups } : {}) };
  const health = deps.queues.health ? { health: deps.queues.health } : {};
  return {
    [DRIFT_ACK_ACTION]: guardAction(driftAckAction({ config: deps.config, redis: deps.redis, notifier: deps.notifier, log: deps.log, ...health }), guard),
  };
}

export function registerCommands(
  app: App,
  handlers: Record<string, CommandHandler>,
  actions: Record<string, ActionHandler> = {},
  checkboxes: Record<string, CheckboxHandler> = {},
  buttons: Record<string, ButtonHandler> = {},
): void {
  for (const [actionId, handle] of Object.entries(buttons)) {
    app.action<BlockButtonAction>({ type: 'block_actions', action_id: actionId }, async ({ ack, body, action, respond }) => {
      await ack();
      const reply = await handle({
        userId: body.user.id,
        userName: body.user.name ?? body.user.id,
        actionId,
        value: action.value ?? '',
        channel: body.channel?.id ?? String(body.container.channel_id ?? ''),
        messageTs: body.message?.ts ?? String(body.container.message_ts ?? ''),
        blocks: (body.message?.blocks ?? []) as Block[],
      });
      // The updated channel message is the answer; a refusal or a problem goes to the clicker alone.
      if (!reply.quiet) await respond({ replace_original: false, response_type: 'ephemeral', text: reply.text });
    });
  }
  for (const [name, handle] of Object.entries(handlers)) {
    app.command(name, async ({ command, ack, respond }) => {
      // Slack allows 3 s to ack; handlers only parse, enqueue or read, so the ack carries the answer itself, or
      // (a fleet's health) says it is coming and the answer replaces it through response_url.
      const reply = await handle({ text: command.text, userId: command.user_id, userName: command.user_name, channelId: command.channel_id });
      await ack({ response_type: 'ephemeral', text: reply.text, ...(reply.blocks ? { blocks: reply.blocks } : {}) });
      if (!reply.later) return;
      const full = await reply.later().catch((err: unknown) => ({ text: `:warning: ${toUserMessage(err)}` }));
      await respond({ replace_original: true, response_type: 'ephemeral', text: full.text });
    });
  }
  for (const [actionId, handle] of Object.entries(actions)) {
    app.action<BlockButtonAction>(actionId, async ({ ack, body, action, respond }) => {
      await ack();
      const reply = await handle({ userId: body.user.id, userName: body.user.name ?? body.user.id, actionId, value: action.value ?? '' });
      // Replaces the ephemeral confirmation, so the buttons cannot be clicked twice.
      await respond({ replace_original: true, response_type: 'ephemeral', text: reply.text });
    });
  }
  for (const [actionId, handle] of Object.entries(checkboxes)) {
    app.action<BlockAction<CheckboxesAction>>({ type: 'block_actions', action_id: actionId }, async ({ ack, body, action, respond }) => {
      await ack();
      const channel = body.channel?.id ?? String(body.container.channel_id ?? '');
      const messageTs = body.message?.ts ?? String(body.container.message_ts ?? '');
      const selected = action.selected_options.flatMap((o) => (o.value === undefined ? [] : [o.value]));
      const reply = await handle({
        userId: body.user.id,
        userName: body.user.name ?? body.user.id,
        actionId,
        value: `${channel}/${messageTs} ${action.block_id} [${selected.join(',')}]`.slice(0, 500),
        channel,
        messageTs,
        blockId: action.block_id,
        selected,
      });
      // The channel message is the answer; only a refusal or a problem goes to the clicker, and never replaces it.
      if (!reply.quiet) await respond({ replace_original: false, response_type: 'ephemeral', text: reply.text });
    });
  }
}

/** The commands' dependencies as the running bot has them (service.ts) and the demo too: one list, so neither lacks one. */
export function commandDepsFrom(deps: Deps, opts: { notifier?: boolean } = {}): CommandDeps {
  return {
    config: deps.config,
    queues: deps.queues,
    schedulers: deps.queues,
    storage: deps.storage,
    redis: deps.redis,
    log: deps.log,
    health: { runs: deps.runs, state: deps.healthState },
    audit: deps.audit,
    ...(opts.notifier === false ? {} : { notifier: deps.notifier }),
    ...(deps.groups ? { groups: deps.groups } : {}),
  };
}
