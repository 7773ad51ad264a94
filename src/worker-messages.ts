import { hostname } from 'node:os';
import { formatDuration } from './format.ts';

/** What the channel hears about `all`'s worker child (worker-supervisor.ts). */

export function workerDied(o: { how: string; upForMs: number; times: number; delayMs: number; longest: boolean }): string {
  const times = o.times > 1 ? ` It has died ${o.times} times since the last message.` : '';
  const every = formatDuration(o.delayMs);
  const again = o.longest ? `it keeps dying: started again every ${every} from now on` : `starting it again in ${every}`;
  return (
    `:warning: The worker process of pg-backup-bot on ${hostname()} ${o.how} after running for ${formatDuration(o.upForMs)}; ${again}.${times} ` +
    'No backup, restore test, health check or page runs until it is back; a backup or restore it was running is picked up by the stalled-job check and reported here. Until then /healthz answers 503.'
  );
}

export function workerBack(pid: number | undefined, deathsSinceMessage: number): string {
  const more = deathsSinceMessage > 0 ? ` (it died ${deathsSinceMessage} more time${deathsSinceMessage === 1 ? '' : 's'} since the last message)` : '';
  return `:white_check_mark: The worker process of pg-backup-bot on ${hostname()} is running again (pid ${pid ?? '?'})${more}.`;
}

/** The page's summary when the child keeps dying. */
export function workerLoopSummary(how: string, deaths: number): string {
  return `pg-backup-bot: the worker process on ${hostname()} keeps dying (${deaths} times in 10 minutes, the last ${how}): no backup, restore test or health check runs`;
}

export function workerCalm(pid: number | undefined, calmMs: number): string {
  return `:white_check_mark: The worker process of pg-backup-bot on ${hostname()} has run for ${formatDuration(calmMs)} (pid ${pid ?? '?'}).`;
}

export function workerCalmSummary(calmMs: number): string {
  return `pg-backup-bot: the worker process on ${hostname()} has run for ${formatDuration(calmMs)} again`;
}
