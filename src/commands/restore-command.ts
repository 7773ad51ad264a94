import { slackDate } from '../notifications/slack-time.ts';
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { RedisConnection } from '../redis-client.ts';
import { type Config, findTarget } from '../config.ts';
import { errorLogFields, toUserMessage } from '../errors.ts';
import { enqueueRestore, withDeadline } from '../jobs/producers.ts';
import type { RestoreJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { escapeMrkdwn } from '../format.ts';
import type { Block } from '../notifications/types.ts';
import { serverLabel } from '../postgres/index.ts';
import { findRestorable, type Storage } from '../storage/index.ts';
import { describeDatabase } from '../postgres/restore/index.ts';
import type { CommandInput, Reply } from './backup-command.ts';
import { restoreAlreadyThere, savePendingRestore, takePendingRestore } from './pending-restores.ts';
import { dropRestoredDatabase, restoredDatabases, restoredDatabasesText } from '../restored-databases.ts';
import { REPLACED_NAME, RESTORE_USAGE, parseRestoreText, type RestoreRequest, SEE_LIST } from './restore-text.ts';
import { dropReplacedAsked } from './drop-replaced.ts';
import { newerBackupsSaid } from './newer-backups.ts';
import { changedSinceShown, isWholeDatabase, scopeNamed } from '../restore-scope.ts';
import { backupsTheSwapEnds } from '../replacement-backups.ts';
import { namedTablesLine, tablesNotInBackup } from './named-tables.ts';
import { diskNeeded, replacementWarning, warningSections } from './replacement-warning.ts';

export const CONFIRM_ACTION = 'restore_into_confirm';
export const CANCEL_ACTION = 'restore_into_cancel';

export interface RestoreCommandDeps {
  config: Config;
  queue: Queue<RestoreJobData>;
  storage: Storage;
  redis: RedisConnection;
  log: Logger;
}

/** Who may overwrite an existing database, in a sentence for a refusal. */
export function whoMayRestoreInto(config: Config): string {
  const users = [...new Set([...(config.roles?.admin ?? []), ...config.restore.allowedUsers])];
  if (users.length === 0) {
    return 'Nobody is allowed to restore into an existing database: allow Slack users with `roles.admin` or `restore.allowedUsers` in the config file, or RESTORE_ALLOWED_USERS.';
  }
  return `Only ${users.map((u) => (u.startsWith('S') ? `<!subteam^${u}>` : `<@${u}>`)).join(', ')} may restore into an existing database.`;
}

/** A new database for a restore without --into: unique, recognisable, never a scratch name. */
export function newRestoreDatabaseName(backupId: string): string {
  const stamp = /(\d{8}T\d{6})Z/.exec(backupId)?.[1]?.toLowerCase() ?? 'backup';
  return `pgbb_restore_${stamp}_${randomBytes(2).toString('hex')}`;
}

/**
 * `/restore <backup-id> --table=… --schema=… [--into=<database>]`. Into a new database: queued at once. Into an
 * existing one: only allowed users, and only after they click a confirmation that names what will be overwritten.
 */
export function restoreCommand(deps: RestoreCommandDeps) {
  return async (input: CommandInput, req: RestoreRequest = parseRestoreText(input.text)): Promise<Reply> => {
    const log = deps.log.child({ command: '/restore', userId: input.userId });
    try {
      if (req.verb === 'help') return { text: req.problem ? `${escapeMrkdwn(req.problem)} Nothing was started.\n\n${RESTORE_USAGE}` : RESTORE_USAGE };
      if (req.verb === 'list')
        return { text: restoredDatabasesText(await withDeadline(2500, restoredDatabases(deps, req.target), 'listing restored databases'), req.target) };
      // A kept `…_replaced_…` database only after a click (drop-replaced.ts), as the CLI only with --yes.
      if (req.verb === 'drop')
        return REPLACED_NAME.test(req.database)
          ? await dropReplacedAsked(deps, req.database)
          : { text: await withDeadline(2500, dropRestoredDatabase(deps, req.database), 'dropping the database', 'postgres') };
      // Only a restore that applies the backup's roles (--with-globals) reads its roles file: damage there alone stops no other.
      const rolesNeeded = req.into === null && req.withGlobals === true;
      const m = await withDeadline(2500, findRestorable(deps.storage, req.backupId, SEE_LIST.slack, rolesNeeded), 'finding the backup', 'storage');
      const targetConfig = findTarget(deps.config, m.target);
      const target = targetConfig.name;
      const notThere = tablesNotInBackup(m, req.tables);
      if (notThere) return { text: escapeMrkdwn(notThere) };
      const requestedBy = { source: 'slack' as const, userId: input.userId, userName: input.userName };
      if (req.into === null) {
        const serverUrl = req.toRestoreServer ? deps.config.restore.serverUrl : targetConfig.url;
        if (serverUrl === null) {
          return { text: 'No restore server is configured (RESTORE_SERVER_URL), so there is nowhere else to restore to; nothing was started.' };
        }
        const database = newRestoreDatabaseName(m.backupId);
        // A new name of its own: never a duplicate.
        const { jobId } = await enqueueRestore(
          deps.queue,
          {
            target,
            backupId: m.backupId,
            tables: req.tables,
            schemas: req.schemas,
            into: { database, create: true },
            requestedBy,
            confirmedBy: null,
            ...(req.toRestoreServer ? { onto: { restoreServer: true as const, withGlobals: req.withGlobals === true } } : {}),
          },
          serverLabel(serverUrl),
        );
        log.info({ jobId, database }, 'restore into a new database queued');
        const roles = req.withGlobals ? ', the backup’s roles applied there first' : '';
        return {
          jobId,
          text: `Restoring ${scopeNamed(req)} from \`${m.backupId}\` into a new database \`${database}\` on ${serverLabel(serverUrl)}${roles}: job \`${jobId}\`. The result will be posted in ${deps.config.slack.channel}.${isWholeDatabase(req) ? diskNeeded(m) : ''}`,
        };
      }
      const whole = isWholeDatabase(req);
      // Asked beside the database's description, not after it: both within Slack's 3 s (second reader).
      const newer = whole
        ? newerBackupsSaid(
            deps.storage,
            m,
            (id) => `\`${id}\``,
            (d) => slackDate(d, deps.config.timezone),
          )
        : Promise.resolve('');
      const shown = whole ? await replacementWarning(targetConfig.url, req.into, m, (d) => slackDate(d, deps.config.timezone)) : null;
      if (whole && shown === null) {
        return {
          text: `There is no database \`${req.into}\` on ${serverLabel(targetConfig.url)}, so nothing to replace; nothing was started. To restore into a new database: \`/restore ${m.backupId}\`.`,
        };
      }
      // Who may do this was decided before this handler ran (commands/guard.ts: admin role).
      const id = await savePendingRestore(deps.redis, deps.config.queuePrefix, {
        target,
        backupId: m.backupId,
        tables: req.tables,
        schemas: req.schemas,
        database: req.into,
        ...(shown ? { oid: shown.oid } : {}),
        requestedBy: { userId: input.userId, userName: input.userName },
      });
      const marks = { redis: deps.redis, prefix: deps.config.queuePrefix };
      const warning = shown
        ? shown.text + (await newer) + (await backupsTheSwapEnds(marks, deps.config, targetConfig.url, req.into))
        : `:warning: This will *overwrite* ${scopeNamed(req)} in the existing database \`${req.into}\` on the server of *${target}* with their contents from backup \`${m.backupId}\` (taken ${slackDate(m.startedAt, deps.config.timezone)}). Rows written since then in those tables are lost.${namedTablesLine(m, req.tables)}`;
      const blocks: Block[] = [
        ...warningSections(warning),
        {
          type: 'actions',
          block_id: `restore_into_${id}`,
          elements: [
            {
              type: 'button',
              action_id: CONFIRM_ACTION,
              style: 'danger',
              text: { type: 'plain_text', text: `${whole ? 'Replace' : 'Overwrite'} ${req.into}`.slice(0, 75) },
              value: id,
              confirm: {
                title: { type: 'plain_text', text: whole ? 'Replace the database?' : 'Overwrite data?' },
                text: {
                  type: 'mrkdwn',
                  text: (whole
                    ? `Replace \`${req.into}\` with backup \`${m.backupId}\`?`
                    : `Overwrite ${scopeNamed(req)} in \`${req.into}\` from \`${m.backupId}\`?`
                  ).slice(0, 300),
                },
                confirm: { type: 'plain_text', text: whole ? 'Replace' : 'Overwrite' },
                deny: { type: 'plain_text', text: 'Keep it' },
              },
            },
            { type: 'button', action_id: CANCEL_ACTION, text: { type: 'plain_text', text: 'Cancel' }, value: id },
          ],
        },
      ];
      return { text: warning, blocks };
    } catch (err) {
      log.warn(errorLogFields(err), 'command failed');
      return { text: `:warning: ${toUserMessage(err)}` };
    }
  };
}

/**
 * The confirmation click. A confirm dialog is only UX — anyone who sees the message could click — so the
 * clicker is checked against the allowed users again, and the request is taken from Redis (single use).
 */
export function restoreConfirmAction(deps: RestoreCommandDeps) {
  return async (click: { userId: string; userName: string; actionId: string; value: string }): Promise<Reply> => {
    const log = deps.log.child({ action: click.actionId, userId: click.userId });
    try {
      if (click.actionId === CANCEL_ACTION) {
        await takePendingRestore(deps.redis, deps.config.queuePrefix, click.value);
        return { text: 'Restore canceled; nothing was changed.' };
      }
      // The clicker's role was checked again before this ran (commands/guard.ts): a confirm dialog is only UX.
      const pending = await takePendingRestore(deps.redis, deps.config.queuePrefix, click.value);
      if (!pending) return { text: 'This confirmation has expired or was already used; nothing was changed. Run `/restore` again.' };
      // What the confirmation described must still be there: a replacement clicked after another one (or after the
      // database was recreated by hand) would move a database nobody was shown aside.
      if (pending.oid !== undefined) {
        const url = findTarget(deps.config, pending.target).url;
        const now = await withDeadline(2000, describeDatabase(url, pending.database), 'looking the database up', 'postgres');
        if (now?.oid !== pending.oid) return { text: changedSinceShown(pending.database, pending.backupId) };
      }
      const server = serverLabel(findTarget(deps.config, pending.target).url);
      const { jobId, duplicate } = await enqueueRestore(
        deps.queue,
        {
          target: pending.target,
          backupId: pending.backupId,
          tables: pending.tables,
          schemas: pending.schemas,
          into: { database: pending.database, create: false, ...(pending.oid !== undefined ? { oid: pending.oid } : {}) },
          requestedBy: { source: 'slack', userId: pending.requestedBy.userId, userName: pending.requestedBy.userName },
          confirmedBy: click.userId,
        },
        server,
      );
      if (duplicate) return { jobId, text: await restoreAlreadyThere(deps.queue, jobId, pending.database, server) };
      log.info({ jobId, database: pending.database }, 'restore into an existing database confirmed and queued');
      return {
        jobId,
        text: isWholeDatabase(pending)
          ? `Confirmed by <@${click.userId}>: replacing \`${pending.database}\` with \`${pending.backupId}\` (restored and verified beside it first), job \`${jobId}\`. The result will be posted in ${deps.config.slack.channel}.`
          : `Confirmed by <@${click.userId}>: restoring ${scopeNamed(pending)} from \`${pending.backupId}\` into \`${pending.database}\`, job \`${jobId}\`. The result will be posted in ${deps.config.slack.channel}.`,
      };
    } catch (err) {
      log.warn({ err }, 'confirmation failed');
      return { text: `:warning: ${toUserMessage(err)}` };
    }
  };
}
