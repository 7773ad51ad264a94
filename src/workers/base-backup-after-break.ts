import type { Queue } from 'bullmq';
import type { Config } from '../config.ts';
import type { WalArchiveFacts } from '../health/wal-types.ts';
import { baseBackupEnqueuer } from '../jobs/base-backup-enqueue.ts';
import type { BaseBackupJobData } from '../jobs/base-backup-data.ts';
import type { Logger } from '../logger.ts';
import { baseBackupUnsupported } from '../postgres/pitr/take-base-backup.ts';
import type { RedisConnection } from '../redis-client.ts';
import { formatTime } from '../format.ts';

/**
 * What breaks a target's recoverable window for every moment from now on: a gap it ends at (a segment lost, set aside
 * as damaged, or never streamed after the slot was lost), or a timeline no base backup was taken on (a promotion).
 * Recovery crosses neither; a base backup taken now opens the window again. `id` names the break, so one base backup
 * is started per break, not one per health run.
 */
export interface WindowBreak {
  id: string;
  /** The base backup's label in its channel message. */
  label: string;
}

export function windowBreak(a: WalArchiveFacts | undefined): WindowBreak | null {
  if (!a || a.unreadable || a.notKept) return null;
  if (a.switched) return { id: `timeline-${a.switched.timeline}`, label: `after the switch to timeline ${a.switched.timeline}` };
  if (a.reachesNewest) return null;
  // The gap that ends the window, or (no window at all: the only base backup lies before it) the newest one.
  const gap = a.gap ?? a.gaps.at(-1);
  return gap ? { id: `gap-${gap}`, label: `after the gap at WAL ${gap}` } : null;
}

/** One break's base backup, as remembered in Redis: which job, started when. */
interface Started {
  jobId: string;
  at: string;
}

/** Kept a month: a break older than that has long been healed, or paged by `base-backup` as too old. */
const REMEMBER_S = 30 * 24 * 3600;

export type AfterBreak = (target: string, archive: WalArchiveFacts | undefined, at: Date, log: Logger) => Promise<string | null>;

/**
 * Starts a base backup when a target's window is broken (windowBreak), once per break across every worker (SET NX on
 * `<prefix>:after-break:<target>:<break>`), unless the target's `pitr.baseBackup.afterBreak` is false or the target
 * cannot take one. Resolves to the sentence the `wal-gap` condition's evidence gains ("The bot started a base backup
 * …"), or null. A base backup that fails pages under its own key (`base-backup`), as any does; it is not retried here
 * for the same break: the page and the weekly schedule take it from there.
 */
export function baseBackupAfterBreak(d: { config: Config; queue: Queue<BaseBackupJobData>; redis: RedisConnection }): AfterBreak {
  const enqueue = baseBackupEnqueuer(d.queue);
  return async (target, archive, at, log) => {
    const t = d.config.targets.find((x) => x.name === target);
    if (!t?.pitr || t.pitr.baseBackup?.afterBreak === false || baseBackupUnsupported(d.config, t) !== null) return null;
    const b = windowBreak(archive);
    if (!b) return null;
    const key = `${d.config.queuePrefix}:after-break:${target}:${b.id}`;
    const claimed = await d.redis.set(key, JSON.stringify({ jobId: '', at: at.toISOString() }), 'EX', REMEMBER_S, 'NX');
    if (claimed !== 'OK') {
      const seen = parseStarted(await d.redis.get(key));
      if (!seen?.jobId) return null;
      const state = await d.queue.getJobState(seen.jobId).catch(() => 'unknown');
      return state === 'failed' ? failedSentence(seen, target) : startedSentence(seen, b);
    }
    try {
      const { jobId } = await enqueue({ target, label: b.label, requestedBy: { source: 'schedule', userName: 'the health check (window broken)' } });
      const started = { jobId, at: at.toISOString() };
      await d.redis.set(key, JSON.stringify(started), 'EX', REMEMBER_S);
      log.warn({ target, break: b.id, jobId }, 'the recoverable window is broken: base backup started');
      return startedSentence(started, b);
    } catch (err) {
      // Not started: the next health run tries again.
      await d.redis.del(key).catch(() => undefined);
      log.warn({ err, target, break: b.id }, 'could not start a base backup after the window broke');
      return null;
    }
  };
}

function parseStarted(raw: string | null): Started | null {
  try {
    const v = raw ? (JSON.parse(raw) as Partial<Started>) : null;
    return v && typeof v.jobId === 'string' && typeof v.at === 'string' ? { jobId: v.jobId, at: v.at } : null;
  } catch {
    return null;
  }
}

const startedSentence = (s: Started, b: WindowBreak) =>
  `The bot started that base backup itself at ${formatTime(new Date(s.at))} (job ${s.jobId}, ${b.label}): the window opens again once it finishes, and this clears then.`;

const failedSentence = (s: Started, target: string) =>
  `The base backup the bot started for it at ${formatTime(new Date(s.at))} (job ${s.jobId}) failed (its own message and \`base-backup\` page say why): take one once that is fixed (\`/backup now --physical ${target}\`).`;
