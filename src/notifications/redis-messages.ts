import type { RedisSnapshot } from '../workers/redis-snapshot.ts';
import { escapeMrkdwn, formatSecond } from '../format.ts';
import type { ChannelMessage } from './types.ts';

/** Pure builders for what the channel hears when Redis loses its data, or the plan cannot be put back. */

/** `2026-12-04 12:34:56 UTC`: seconds matter when saying when a server restarted. */
export { formatSecond };

export interface RedisLoss {
  /** When Redis restarted (from its uptime), or null when it kept running (FLUSHALL, a failover). */
  restartedAt: Date | null;
  noticedAt: Date;
  /** What noticed: `reconnect` or `periodic check`. */
  how: string;
  restored: { schedulers: number; limits: string[] };
  snapshot: RedisSnapshot | null;
  requeued: { paged: number; events: number; runs?: number };
}

function lostJobs(loss: RedisLoss): string[] {
  const snap = loss.snapshot;
  if (!snap) return ['Nothing is known of the jobs lost with it: this worker had not read Redis intact yet.'];
  const lines = snap.active.map(
    (j) =>
      `• a ${j.queue} job${j.target ? ` of *${j.target}*` : ''} was running (\`${escapeMrkdwn(j.id)}\`): its worker goes on and posts its own verdict, but BullMQ no longer tracks it`,
  );
  const events = snap.outbox.reduce((n, o) => n + o.events.length, 0);
  if (events > 0)
    lines.push(
      `• ${events} PagerDuty event${events === 1 ? ' was' : 's were'} waiting to be delivered (${snap.outbox.map((o) => `\`${escapeMrkdwn(o.dedupKey)}\``).join(', ')}): re-queued`,
    );
  if (snap.paged.length > 0)
    lines.push(
      `• ${snap.paged.length} open page${snap.paged.length === 1 ? '' : 's'} remembered (${snap.paged.map((k) => `\`${escapeMrkdwn(k)}\``).join(', ')}): resolved when the condition clears`,
    );
  const runs = loss.requeued.runs ?? 0;
  if (snap.runs?.length)
    lines.push(
      `• the run log's ${snap.runs.length} last run${snap.runs.length === 1 ? '' : 's'} (backups, base backups, restore tests): ${runs} put back, so health judges them as before${runs < snap.runs.length ? `; ${snap.runs.length - runs} not (a newer run recorded since, or a dump this Redis cannot read)` : ''}`,
    );
  if (lines.length === 0) lines.push('• no job was running and no page was waiting');
  return [`What was lost with it, as last seen intact at ${formatSecond(snap.at)}:`, ...lines];
}

export function redisDataLost(loss: RedisLoss): ChannelMessage {
  const when = loss.restartedAt
    ? `at ${formatSecond(loss.restartedAt)} (it restarted empty)`
    : `${loss.snapshot ? `between ${formatSecond(loss.snapshot.at)} and ` : 'before '}${formatSecond(loss.noticedAt)} (FLUSHALL, or a failover to a replica without the keys)`;
  const limits = loss.restored.limits.length > 0 ? ` and the queue limits (${loss.restored.limits.join(', ')}: one at a time)` : '';
  const head = `:warning: Redis lost its data ${when}; schedules restored: ${loss.restored.schedulers} job scheduler${loss.restored.schedulers === 1 ? '' : 's'}${limits}. Noticed by the ${loss.how}.`;
  const tail = 'A health check runs now. Finished-job history from before the loss is gone.';
  const text = [head, ...lostJobs(loss), tail].join('\n');
  return { text: text.replace(/[*`]/g, ''), blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 2900) } }] };
}

export function planNotRestored(missing: string[], reason: string, escalation: string): ChannelMessage {
  const list =
    missing
      .slice(0, 12)
      .map((m) => `\`${escapeMrkdwn(m)}\``)
      .join(', ') + (missing.length > 12 ? ` and ${missing.length - 12} more` : '');
  const text = `:rotating_light: Planned schedules are missing from Redis and could not be restored: ${list}. ${escapeMrkdwn(reason)} Until they are back, these backups, restore tests, retention runs and checks do not run.`;
  return {
    text: text.replace(/[*`]/g, ''),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 2900) } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escalation }] },
    ],
  };
}

export function planRestored(resolved: string | null): ChannelMessage {
  return { text: `:white_check_mark: Every planned schedule is in Redis again.${resolved ? ` ${resolved}` : ''}` };
}
