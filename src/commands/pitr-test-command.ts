import type { Queue } from 'bullmq';
import { type Config, findTarget } from '../config.ts';
import { BotError } from '../errors.ts';
import { enqueuePitrTest, withDeadline } from '../jobs/producers.ts';
import type { RestoreTestJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { primaryPitrStore } from '../postgres/pitr/s3-archive.ts';
import { planPitrTest } from '../postgres/pitr/pitr-test.ts';
import type { CommandInput, Reply } from './backup-command.ts';

/**
 * `/restore-test pitr [target] [latest|random|<time>]`: a point-in-time restore test, queued. Refused at once, with
 * the reason, when the target has no WAL archive, the time has no offset, or lies outside the recoverable window
 * (named); the worker checks again when it starts, since the window moves.
 */
export async function queuePitrTest(
  deps: { config: Config; queue: Queue<RestoreTestJobData>; log: Logger },
  input: CommandInput,
  req: { target?: string | undefined; at: string },
): Promise<Reply> {
  const target = req.target ? findTarget(deps.config, req.target) : (deps.config.targets.find((t) => t.pitr) ?? findTarget(deps.config, undefined));
  if (!target.pitr) {
    const withPitr = deps.config.targets.filter((t) => t.pitr).map((t) => t.name);
    throw new BotError(
      'bad_request',
      `*${target.name}* has no point-in-time recovery (no \`pitr\` section in the config file)${withPitr.length ? `; targets with it: ${withPitr.join(', ')}` : ''}.`,
    );
  }
  // Planned where the archive is (the bucket, with S3 as the primary store), so a time outside the window is refused now.
  const remote = primaryPitrStore(deps.config, target.name);
  await withDeadline(2500, planPitrTest(deps.config.backupDir, target.name, req.at, Math.random, remote), 'reading the WAL archive', 'storage').finally(() =>
    remote?.client.destroy(),
  );
  const { jobId, duplicate } = await enqueuePitrTest(deps.queue, {
    target: target.name,
    requestedBy: { source: 'slack', userId: input.userId, userName: input.userName },
    pitr: { at: req.at },
  });
  deps.log.info({ jobId, duplicate, at: req.at }, duplicate ? 'PITR restore test already running' : 'PITR restore test queued');
  const moment = (at: string) => (at === 'latest' ? 'the latest moment' : at === 'random' ? 'a random moment of the window' : `\`${at}\``);
  const to = moment(req.at);
  if (!duplicate)
    return {
      jobId,
      text: `PITR restore test of *${target.name}* to ${to} queued: job \`${jobId}\`. Progress and the verdict will be posted in ${deps.config.slack.channel}.`,
    };
  // Which moment the test already there is for, and that this one was not queued (QA: a second time was dropped quietly).
  const there = await withDeadline(1000, deps.queue.getJob(jobId), 'reading the queued test').catch(() => undefined);
  const its = there?.data.pitr?.at;
  const other = its !== undefined && its !== req.at;
  return {
    jobId,
    text: `A PITR restore test of *${target.name}* is already queued or running${its ? ` (to ${moment(its)})` : ''}: job \`${jobId}\`. Its verdict will be posted in ${deps.config.slack.channel}.${other || its === undefined ? ` This one, to ${to}, was not queued: ask again once that verdict is posted.` : ''}`,
  };
}
