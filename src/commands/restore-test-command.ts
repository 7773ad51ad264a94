import type { Queue } from 'bullmq';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { BotError, errorLogFields, toUserMessage } from '../errors.ts';
import { enqueueRestoreTest, withDeadline } from '../jobs/producers.ts';
import type { RestoreTestJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { escapeMrkdwn } from '../format.ts';
import { restoreTestHistory } from '../notifications/restore-history.ts';
import { findRestorable, latestGoodBackup, type PassedOver, passedOverSentence } from '../storage/index.ts';
import type { Storage } from '../storage/index.ts';
import type { CommandInput, Reply } from './backup-command.ts';
import { RESTORE_TEST_USAGE, parseRestoreTestText, type RestoreTestRequest, SEE_LIST } from './restore-text.ts';
import { isWholeDatabase } from '../restore-scope.ts';
import { queuePitrTest } from './pitr-test-command.ts';

export interface RestoreTestCommandDeps {
  config: Config;
  queue: Queue<RestoreTestJobData>;
  storage: Storage;
  log: Logger;
}

/** No good backup to test: none taken yet, or every stored one damaged (a different problem, said as such). */
function noBackupToTest(target: string, damaged: number, pitr: boolean): string {
  if (damaged === 0) return `There is no finished backup of *${target}* to test yet. Take one with \`/backup now ${target}\`.`;
  // With a WAL archive there is another way back, which does not need these backups: said, since a new one is no
  // help when the database itself is what broke.
  const archive = pitr
    ? ` Point-in-time recovery does not need them: \`/backup list ${target}\` shows its window, \`/restore-test pitr ${target}\` tests it, and \`pg-backup-bot restore-pitr\` restores (README "Point-in-time recovery").`
    : '';
  return `There is no restorable backup of *${target}* to test: ${damaged} stored ${damaged === 1 ? 'is' : 'are'} damaged (\`/backup list ${target}\` says why). Take a new one with \`/backup now ${target}\`, and check the storage.${archive}`;
}

/** `/restore-test latest [target] | <backup-id> | history [target] | pitr [target] [time|latest]`. */
export function restoreTestCommand(deps: RestoreTestCommandDeps) {
  return async (input: CommandInput, req: RestoreTestRequest = parseRestoreTestText(input.text)): Promise<Reply> => {
    const log = deps.log.child({ command: '/restore-test', userId: input.userId });
    try {
      if (req.verb === 'help') return { text: req.problem ? `${escapeMrkdwn(req.problem)} Nothing was started.\n\n${RESTORE_TEST_USAGE}` : RESTORE_TEST_USAGE };
      if (req.verb === 'history') {
        if (req.target) findTarget(deps.config, req.target);
        const [tests, restores] = await withDeadline(
          2500,
          Promise.all([deps.storage.listRecords('restore-test', req.target), deps.storage.listRecords('restore', req.target)]),
          'reading restore-test history',
          'storage',
        );
        // Full restores beside the tests: each is a measured RTO of the whole database. Selective ones are not.
        const whole = restores.filter((r) => r.selection !== null && isWholeDatabase(r.selection));
        const records = [...tests, ...whole].sort((a, b) => Date.parse(b.startedAt) - Date.parse(a.startedAt));
        return { text: restoreTestHistory(records, req.target) };
      }
      if (req.verb === 'pitr') return await queuePitrTest(deps, input, req);
      let backupId: string;
      let target: string;
      let passedOver: PassedOver[] = [];
      if (req.which.latest) {
        const configured = findTarget(deps.config, req.which.target);
        target = configured.name;
        const found = await withDeadline(2500, latestGoodBackup(deps.storage, target), 'finding the latest backup', 'storage');
        if (!found.latest) throw new BotError('backup_not_found', noBackupToTest(target, deps.storage.damaged?.(target).length ?? 0, !!configured.pitr));
        backupId = found.latest.backupId;
        passedOver = found.passedOver;
      } else {
        const m = await withDeadline(2500, findRestorable(deps.storage, req.which.backupId, SEE_LIST.slack), 'finding the backup', 'storage');
        target = findTarget(deps.config, m.target).name;
        backupId = m.backupId;
      }
      const { jobId, duplicate } = await enqueueRestoreTest(deps.queue, {
        target,
        backupId,
        requestedBy: { source: 'slack', userId: input.userId, userName: input.userName },
        ...(passedOver.length ? { passedOver } : {}),
      });
      log.info({ jobId, duplicate, backupId }, duplicate ? 'restore test already running' : 'restore test queued');
      const skipped = passedOverSentence(passedOver, `/backup health ${target}`);
      return {
        jobId,
        text: `${
          duplicate
            ? `A restore test of \`${backupId}\` is already queued or running: job \`${jobId}\`. Its verdict will be posted in ${deps.config.slack.channel}.`
            : `Restore test of \`${backupId}\` queued: job \`${jobId}\`. Progress and the verdict will be posted in ${deps.config.slack.channel}.`
        }${skipped ? ` :warning: ${skipped}` : ''}`,
      };
    } catch (err) {
      log.warn(errorLogFields(err), 'command failed');
      return { text: `:warning: ${toUserMessage(err)}` };
    }
  };
}
