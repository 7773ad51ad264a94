import type { Queue } from 'bullmq';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { baseBackupEnqueuer } from '../jobs/base-backup-enqueue.ts';
import type { BaseBackupJobData } from '../jobs/base-backup-data.ts';
import type { Logger } from '../logger.ts';
import { baseBackupUnsupported } from '../postgres/pitr/take-base-backup.ts';

/**
 * `/backup now --physical [target]`: a base backup for point-in-time recovery, queued on `base-backup` (one per
 * target at a time, like `/backup now`). The worker posts its progress and verdict in the channel.
 */
export function baseBackupNow(deps: { config: Config; queue: Queue<BaseBackupJobData> | undefined; log: Logger }) {
  const enqueue = deps.queue ? baseBackupEnqueuer(deps.queue) : null;
  return async (who: { userId: string; userName: string }, targetName: string | undefined): Promise<{ text: string; jobId?: string }> => {
    const target = findTarget(deps.config, targetName);
    if (!target.pitr) {
      return {
        text: `*${target.name}* has no point-in-time recovery (no \`pitr\` section in the config file), so it has no base backups: \`/backup now ${target.name}\` takes a logical backup. Nothing was started.`,
      };
    }
    const unsupported = baseBackupUnsupported(deps.config, target);
    if (unsupported) return { text: `${unsupported} Nothing was started.` };
    if (!enqueue) return { text: 'Base backups cannot be started from here (no base-backup queue). Nothing was started.' };
    const { jobId, duplicate } = await enqueue({
      target: target.name,
      label: null,
      requestedBy: { source: 'slack', userId: who.userId, userName: who.userName },
    });
    deps.log.info({ jobId, duplicate, target: target.name }, duplicate ? 'base backup already running' : 'base backup queued');
    const channel = deps.config.slack.channel;
    return {
      jobId,
      text: duplicate
        ? `A base backup of *${target.name}* is already queued or running: job \`${jobId}\`. Its result will be posted in ${channel}; no second one was started.`
        : `Base backup of *${target.name}* queued: job \`${jobId}\`. Progress and the result will be posted in ${channel}.`,
    };
  };
}
