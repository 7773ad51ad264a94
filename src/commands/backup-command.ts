import { unscheduledStatus } from '../schedules/unscheduled.ts';
import type { RedisConnection } from '../redis-client.ts';
import { walStatusLines } from './wal-status.ts';
import type { Queue } from 'bullmq';
import type { Config } from '../config.ts';
import { findTarget } from '../config.ts';
import { errorLogFields, toUserMessage } from '../errors.ts';
import type { ChecklistJob } from '../jobs/checklist-data.ts';
import { backupEnqueuer, enqueueChecklist, withDeadline } from '../jobs/producers.ts';
import type { BackupJobData } from '../jobs/queues.ts';
import type { Logger } from '../logger.ts';
import { escapeMrkdwn } from '../format.ts';
import type { Block } from '../notifications/types.ts';
import type { Storage } from '../storage/index.ts';
import { BACKUP_USAGE, parseBackupText, type BackupRequest } from './backup-text.ts';
import { formatQueueStatus } from './replies.ts';
import { type BackupLister, backupLister, listReply } from './backup-list.ts';
import { formatScheduleStatus, scheduleStatus } from '../schedules/index.ts';
import { plannedSchedulers, type SchedulerQueues } from '../schedules/index.ts';
import { checkedNow, diskSubject, healthSources } from '../health/index.ts';
import type { RunLog } from '../health/index.ts';
import type { HealthState } from '../health/index.ts';
import { diskOverviewLine, healthOverview } from '../notifications/health-messages.ts';
import type { AuditLog } from '../audit.ts';
import type { BaseBackupJobData } from '../jobs/base-backup-data.ts';
import { baseBackupNow } from './base-backup-now.ts';
import { diffReply } from './backup-diff.ts';

export interface CommandInput {
  text: string;
  userId: string;
  userName: string;
  channelId?: string;
}

/** What the person who typed the command sees, only them. */
export interface Reply {
  text: string;
  blocks?: Block[];
  /** Nothing to tell the clicker (a checklist tick: the updated message is the answer); the text is for the audit. */
  quiet?: boolean;
  /** The job this answer started or points at, for the audit trail (never read back out of the prose). */
  jobId?: string;
  /**
   * The full answer, when it takes longer than an ack should: `text` acks at once, this replaces it (response_url).
   * Started only once the ack has gone out: begun earlier, its reads (a fleet's 200 health checks) delayed the ack.
   */
  later?: () => Promise<Reply>;
}

export interface BackupCommandDeps {
  config: Config;
  queue: Queue<BackupJobData>;
  storage: Storage;
  log: Logger;
  /** For `/backup health`: the last runs and the remembered condition states. */
  health?: { runs: RunLog; state: HealthState };
  audit?: AuditLog;
  /** For `/backup checklist`: the queue the checklist worker takes its jobs from. */
  checklist?: Queue<ChecklistJob>;
  /** For `/backup status`: the queues whose job schedulers Redis holds (next runs as BullMQ has them). */
  schedulers?: SchedulerQueues;
  /** For `/backup status`: the WAL streams' state, as the workers write it. */
  redis?: RedisConnection;
  /** For `/backup now --physical`: the queue the base-backup worker takes its jobs from. */
  baseBackup?: Queue<BaseBackupJobData>;
}

/** Scheduler id → next run (ms), as Redis holds them; undefined when there are no scheduler queues to read. */
async function heldSchedulers(queues: SchedulerQueues | undefined): Promise<Map<string, number | undefined> | undefined> {
  if (!queues) return undefined;
  const held = [queues.backup, queues.restoreTest, queues.retention, queues.checklist, ...(queues.baseBackup ? [queues.baseBackup] : [])];
  const lists = await Promise.all(held.map((q) => q.getJobSchedulers()));
  return new Map(lists.flat().map((s) => [s.key, s.next]));
}

/**
 * The answer to `/backup pre-migration` when a backup of the target is already queued or running (read within a short
 * deadline: the enqueue already spent part of Slack's 3 s; too slow, the general answer). A second click
 * at 3 a.m. (the first answer was slow, or scrolled away) must not read as "nothing started": when the running job
 * is that very pre-migration backup, its restore test and checklist are on their way.
 */
async function preMigrationBusy(deps: BackupCommandDeps, target: string, label: string, jobId: string): Promise<string> {
  const job = await withDeadline(700, deps.queue.getJob(jobId), 'reading the running backup').catch(() => undefined);
  const running = job?.data;
  if (running?.kind === 'pre-migration' && running.label === label) {
    return `Pre-migration backup *${escapeMrkdwn(label)}* of *${target}* is already queued or running: job \`${jobId}\`. Nothing new was started; its restore test and the pre-migration checklist follow in ${deps.config.slack.channel}.`;
  }
  // Another backup (not a pre-migration one, or another migration's): no restore test or checklist of ours follows it.
  const what = running?.kind === 'pre-migration' && running.label ? `The pre-migration backup *${escapeMrkdwn(running.label)}*` : 'A backup';
  return `${what} of *${target}* is already queued or running (job \`${jobId}\`), so no pre-migration backup *${escapeMrkdwn(label)}* was started. Run \`/backup pre-migration ${escapeMrkdwn(label)}\` again when it has finished.`;
}

/** One `/backup` request as its verb's handler sees it: the command's dependencies and shared reads, who asked, a logger. */
interface Ask {
  deps: BackupCommandDeps;
  input: CommandInput;
  log: Logger;
  listBackups: BackupLister;
  enqueueBackup: ReturnType<typeof backupEnqueuer>;
  enqueueBaseBackup: ReturnType<typeof baseBackupNow>;
}

type Request<V extends BackupRequest['verb']> = Extract<BackupRequest, { verb: V }>;

/** `/backup …`: parse, check, enqueue or read, and answer — all fast, so the ack carries the answer. */
export function backupCommand(deps: BackupCommandDeps) {
  const listBackups = backupLister(deps.storage);
  const enqueueBackup = backupEnqueuer(deps.queue);
  const enqueueBaseBackup = baseBackupNow({ config: deps.config, queue: deps.baseBackup, log: deps.log });
  // `req` is the request the guard parsed (commands/guard.ts); parsed here only when the handler is called directly.
  return async (input: CommandInput, req: BackupRequest = parseBackupText(input.text)): Promise<Reply> => {
    const log = deps.log.child({ command: '/backup', userId: input.userId });
    log.info({ verb: req.verb }, 'command received');
    try {
      return await answer({ deps, input, log, listBackups, enqueueBackup, enqueueBaseBackup }, req);
    } catch (err) {
      log.warn(errorLogFields(err), 'command failed');
      return { text: `:warning: ${toUserMessage(err)}` };
    }
  };
}

type Handler<V extends BackupRequest['verb']> = (ask: Ask, req: Request<V>) => Promise<Reply>;

/** One handler per verb; any of them failing is answered by the caller with the reason. */
const HANDLERS: { [V in BackupRequest['verb']]: Handler<V> } = {
  help: async (_ask, req) => ({ text: req.problem ? `${escapeMrkdwn(req.problem)} Nothing was started.\n\n${BACKUP_USAGE}` : BACKUP_USAGE }),
  now: backupNow,
  'pre-migration': preMigrationBackup,
  checklist: postChecklist,
  list: ({ deps, listBackups }, req) => listReply(deps, listBackups, req.target),
  health: healthReply,
  diff: diffReply,
  audit: auditReply,
  status: statusReply,
};

function answer(ask: Ask, req: BackupRequest): Promise<Reply> {
  // The table is keyed by the request's own verb, so its handler takes this request; TypeScript cannot follow that link.
  const handle = HANDLERS[req.verb] as Handler<BackupRequest['verb']>;
  return handle(ask, req);
}

async function backupNow({ deps, input, log, enqueueBackup, enqueueBaseBackup }: Ask, req: Request<'now'>): Promise<Reply> {
  if (req.physical) return enqueueBaseBackup(input, req.target);
  const target = findTarget(deps.config, req.target);
  const { jobId, duplicate } = await enqueueBackup({
    target: target.name,
    kind: 'manual',
    label: null,
    requestedBy: { source: 'slack', userId: input.userId, userName: input.userName },
  });
  log.info({ jobId, duplicate, target: target.name }, duplicate ? 'backup already running' : 'backup queued');
  return {
    jobId,
    text: duplicate
      ? `A backup of *${target.name}* is already queued or running: job \`${jobId}\`. Its result will be posted in ${deps.config.slack.channel}; no second dump was started.`
      : `Backup of *${target.name}* queued: job \`${jobId}\`. Progress and the result will be posted in ${deps.config.slack.channel}.`,
  };
}

async function preMigrationBackup({ deps, input, log, enqueueBackup }: Ask, req: Request<'pre-migration'>): Promise<Reply> {
  const target = findTarget(deps.config, req.target);
  const { jobId, duplicate } = await enqueueBackup({
    target: target.name,
    kind: 'pre-migration',
    label: req.label,
    requestedBy: { source: 'slack', userId: input.userId, userName: input.userName },
    keepDays: target.policy.preMigration.keepDays,
  });
  log.info({ jobId, duplicate, target: target.name, label: req.label }, duplicate ? 'backup already running' : 'pre-migration backup queued');
  if (duplicate) return { jobId, text: await preMigrationBusy(deps, target.name, req.label, jobId) };
  return {
    jobId,
    text:
      `Pre-migration backup *${escapeMrkdwn(req.label)}* of *${target.name}* queued: job \`${jobId}\`, kept ${target.policy.preMigration.keepDays} days. ` +
      `A restore test of it follows, then the pre-migration checklist with both results is posted in ${deps.config.slack.channel}.`,
  };
}

async function postChecklist({ deps, log }: Ask, req: Request<'checklist'>): Promise<Reply> {
  if (!deps.checklist) return { text: 'Checklists cannot be posted from here (no checklist queue). Nothing was started.' };
  const { jobId, duplicate } = await enqueueChecklist(deps.checklist, req.kind);
  log.info({ jobId, duplicate, kind: req.kind }, duplicate ? 'checklist already queued' : 'checklist queued');
  return {
    jobId,
    text: duplicate
      ? `A ${req.kind} checklist is already being prepared: job \`${jobId}\`. It will be posted in ${deps.config.slack.channel}; no second one was started.`
      : `The ${req.kind} checklist is being prepared (job \`${jobId}\`): the bot runs its checks and posts it in ${deps.config.slack.channel}.`,
  };
}

/** Past this many targets `/backup health` acks at once and answers through response_url (200 took 0.4–0.7 s here). */
const HEALTH_IN_ACK_TARGETS = 20;

async function healthReply(ask: Ask, req: Request<'health'>): Promise<Reply> {
  const targets = req.target ? [findTarget(ask.deps.config, req.target)] : ask.deps.config.targets;
  if (targets.length <= HEALTH_IN_ACK_TARGETS) return healthOf(ask, targets);
  return { text: `Checking the health of ${targets.length} targets…`, later: () => healthOf(ask, targets) };
}

async function healthOf({ deps }: Ask, targets: Config['targets']): Promise<Reply> {
  const now = new Date();
  const sources = healthSources(deps.config, { storage: deps.storage, runs: deps.health?.runs ?? null, backupQueue: deps.queue });
  // A target whose storage cannot be read (or is slow) is shown unchecked, with why and its last verdicts; the
  // deadline is Redis's, for the stored verdicts (QA: it blamed Redis for an unreadable backup directory).
  const perTarget = await withDeadline(
    2500,
    Promise.all(
      targets.map(async (t) => {
        const stored = deps.health ? await deps.health.state.read(t.name) : {};
        return { target: t.name, results: await checkedNow(sources, t.name, now, stored), stored };
      }),
    ),
    'reading the health state',
  );
  const subject = diskSubject(deps.storage);
  const disk = deps.health ? diskOverviewLine(subject, (await deps.health.state.read(subject)).disk) : '';
  const overview = healthOverview(perTarget);
  return { text: [disk, overview].filter(Boolean).join('\n\n') || 'No targets are configured.' };
}

async function auditReply({ deps }: Ask, req: Request<'audit'>): Promise<Reply> {
  const entries = deps.audit ? await withDeadline(2500, deps.audit.tail(req.count), 'reading the audit trail') : [];
  if (entries.length === 0) return { text: 'The audit trail is empty.' };
  const lines = entries.map(
    (e) =>
      `• ${e.at.slice(0, 19).replace('T', ' ')} · ${e.userId ? `<@${e.userId}>` : e.kind} · ${escapeMrkdwn(`${e.what} ${e.args}`.trim())} · ${e.decision}${e.jobId ? ` · job \`${e.jobId}\`` : ''}${e.result ? ` · ${escapeMrkdwn(e.result.slice(0, 120))}` : ''}`,
  );
  return { text: `*Audit trail* (last ${entries.length}, oldest first):\n${lines.join('\n')}`.slice(0, 3900) };
}

async function statusReply({ deps }: Ask): Promise<Reply> {
  const [jobs, held] = await withDeadline(2500, Promise.all([formatQueueStatus(deps.queue), heldSchedulers(deps.schedulers)]), 'reading the job queue');
  // The plan from the config against what Redis holds (workers keep them in step: workers/plan-keeper.ts).
  const wal = deps.redis ? await withDeadline(1000, walStatusLines(deps.config, deps.redis), 'reading the WAL streams') : [];
  const walText = wal.length ? `\n\n${wal.join('\n')}` : '';
  // The schedules get what the jobs and WAL streams leave of one answer: a fleet's are summed up, not cut off.
  const unscheduled = unscheduledStatus(deps.config);
  const head = unscheduled ? `${unscheduled}\n\n` : '';
  const room = 3900 - head.length - jobs.length - walText.length - 2;
  const schedules = formatScheduleStatus(scheduleStatus(plannedSchedulers(deps.config), new Date(), 1, held), deps.config.timezone, Math.max(room, 600));
  return { text: `${head}${jobs}\n\n${schedules}${walText}`.slice(0, 3900) };
}
