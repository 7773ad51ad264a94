import { isDeepStrictEqual } from 'node:util';
import type { JobSchedulerJson, Queue } from 'bullmq';
import type { Logger } from '../logger.ts';
import type { ScheduleConfig } from './config-schema.ts';
import { diffSchedulers, planSchedulers, upsertArgs, type PlannedScheduler, type SchedulerQueue } from './plan.ts';
import type { TargetPolicy } from './policy.ts';

/**
 * Start-up: makes the job schedulers in Redis match the config. Every bot process runs it, possibly several at
 * once; what makes that safe is BullMQ 6.7 itself (node_modules/bullmq/dist/esm/commands/addJobScheduler-11.lua):
 *
 * - An upsert is one Lua script, so it is atomic: it writes the scheduler hash (DEL + HMSET, so no field of an
 *   old definition survives), ZADDs the id to the queue's `repeat` set (a set: one entry per id, however many
 *   processes upsert it) and replaces the scheduler's pending job `repeat:<id>:<nextMillis>` with a new one. Two
 *   processes upserting the same id at once leave one scheduler and one pending job, whichever ran second.
 * - The next run is computed in JavaScript (cron-parser, with `tz`) before the script runs, from the upserting
 *   process's clock; the job a worker picks up computes the one after it from the job's own `opts.repeat`, and
 *   the script only adds it if the job is still the scheduler's current one, so a job of an old definition never
 *   revives it.
 * - But an upsert REPLACES the pending job even when nothing changed, and computes the next run from "now": a run
 *   that came due while every worker was down (a deploy over 02:00) would be dropped and pushed to tomorrow.
 *   So a scheduler whose stored pattern, tz, name, data and options already match is left alone; only new or
 *   changed ones are upserted, and an overdue job survives a restart and runs as soon as a worker is up.
 * - An upsert can fail with "job ID already exists" when another process's job for the same slot is already
 *   active; it is read back, and counted as done when what is stored matches.
 * - `tz` is not validated by BullMQ (an unknown zone fails later inside cron-parser with "unhandled timestamp"):
 *   the config schema checks and canonicalizes it. `every` would ignore `tz` entirely, which is why every
 *   planned scheduler is a cron pattern.
 *
 * Ids without the `pgbb:` prefix (the `health` scheduler) are never read as ours, never removed.
 */

export interface ScheduleSource {
  targets: ReadonlyArray<{ policy: TargetPolicy }>;
  timezone: string;
  schedules: Pick<ScheduleConfig, 'retention' | 'reminders'>;
}

/** What should exist in Redis for this config (also what `/backup status` shows). */
export function plannedSchedulers(config: ScheduleSource): PlannedScheduler[] {
  return planSchedulers(
    { timezone: config.timezone, ...config.schedules },
    config.targets.map((t) => t.policy),
  );
}

/** The queues that carry job schedulers; any Queue will do (the job data types differ per queue). */
type SchedulerQueueHandle = Pick<Queue, 'getJobSchedulers' | 'getJobScheduler' | 'upsertJobScheduler' | 'removeJobScheduler' | 'defaultJobOptions' | 'name'>;
/** `baseBackup` may be absent (a caller without that queue): its schedulers are then neither upserted nor removed. */
export type SchedulerQueues = Record<'backup' | 'restoreTest' | 'retention' | 'checklist', SchedulerQueueHandle> & { baseBackup?: SchedulerQueueHandle };

export interface SyncResult {
  /** Created or changed. */
  upserted: string[];
  unchanged: string[];
  removed: string[];
}

const QUEUE_KEYS: Record<SchedulerQueue, keyof SchedulerQueues> = {
  backup: 'backup',
  'restore-test': 'restoreTest',
  retention: 'retention',
  checklist: 'checklist',
  'base-backup': 'baseBackup',
};

/** Whether the stored scheduler already is what `p` asks for (the template options are the queue's defaults). */
function matches(stored: JobSchedulerJson | undefined, p: PlannedScheduler, defaults: unknown): boolean {
  if (!stored) return false;
  return (
    stored.pattern === p.pattern &&
    stored.tz === p.tz &&
    stored.every === undefined &&
    stored.name === p.name &&
    isDeepStrictEqual(stored.template?.data ?? {}, p.data) &&
    isDeepStrictEqual(stored.template?.opts ?? {}, defaults ?? {})
  );
}

export async function syncSchedulers(queues: SchedulerQueues, config: ScheduleSource, log: Logger): Promise<SyncResult> {
  const plan = plannedSchedulers(config);
  const result: SyncResult = { upserted: [], unchanged: [], removed: [] };
  for (const [queueName, key] of Object.entries(QUEUE_KEYS) as Array<[SchedulerQueue, keyof SchedulerQueues]>) {
    const queue = queues[key];
    if (!queue) continue;
    const existing = await queue.getJobSchedulers();
    const byId = new Map(existing.map((s) => [s.key, s]));
    const { upsert, remove } = diffSchedulers(
      plan.filter((p) => p.queue === queueName),
      existing.map((s) => s.key),
    );
    for (const p of upsert) {
      if (matches(byId.get(p.id), p, queue.defaultJobOptions)) {
        result.unchanged.push(p.id);
        continue;
      }
      try {
        await queue.upsertJobScheduler(...upsertArgs(p));
      } catch (err) {
        // Another process upserted the same definition a moment earlier and its job is already running.
        if (!matches(await queue.getJobScheduler(p.id), p, queue.defaultJobOptions)) throw err;
        log.debug({ err, scheduler: p.id }, 'scheduler upserted concurrently by another process');
      }
      result.upserted.push(p.id);
    }
    for (const id of remove) {
      await queue.removeJobScheduler(id);
      result.removed.push(id);
    }
  }
  log.info(result, 'job schedulers in step with the config');
  return result;
}
