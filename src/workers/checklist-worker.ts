import type { Job } from 'bullmq';
import { preMigrationVerifications } from '../checklists/evidence.ts';
import type { RetentionRuns } from '../checklists/retention-runs.ts';
import { initialState, type ChecklistStore } from '../checklists/state.ts';
import { runVerifiers } from '../checklists/verifiers.ts';
import type { Config } from '../config.ts';
import type { RunLog } from '../health/index.ts';
import { ChecklistJob } from '../jobs/checklist-data.ts';
import type { Logger } from '../logger.ts';
import { checklistItems, checklistMessage, DEFAULT_CHECKLISTS, type Verification, type VerifierId } from '../notifications/checklists.ts';
import type { MessageRef, Notifier } from '../notifications/types.ts';
import { formatInZone } from '../schedules/index.ts';
import type { Storage } from '../storage/index.ts';
import { checkedAtTheDoor } from './job-door.ts';
import { replyPreMigrationDrift } from './pre-migration-drift.ts';

export interface ChecklistWorkerDeps {
  config: Config;
  storage: Storage;
  runs: RunLog | null;
  retention: RetentionRuns | null;
  notifier: Notifier;
  store: ChecklistStore;
  log: Logger;
  now?: () => Date;
}

/**
 * Posts one checklist: the bot runs the checks it can (scheduled lists) or takes the results handed on by the
 * pre-migration backup and its restore test, ticks what passed with the evidence, and keeps the state in Redis
 * under the message so people's ticks can be applied. Posting is the job: a Slack failure fails it (retried).
 */
export function checklistProcessor(deps: ChecklistWorkerDeps) {
  const now = deps.now ?? (() => new Date());
  // Checked at the door like every job (job-door.ts): a checklist whose data does not fit is said in the channel, since
  // the people waiting for it (a pre-migration checklist) would otherwise wait for nothing.
  return checkedAtTheDoor(
    ChecklistJob,
    'checklist',
    deps,
    async (job: Job<ChecklistJob>, _token?: string, signal?: AbortSignal): Promise<{ ts: string; passed: number; failed: number }> => {
      const data = job.data;
      const log = deps.log.child({ jobId: job.id, kind: data.kind, attempt: job.attemptsMade + 1 });
      const at = now();
      const defs = DEFAULT_CHECKLISTS[data.kind];
      const tz = deps.config.timezone;
      let results: Partial<Record<VerifierId, Verification>>;
      let subtitle: string;
      if (data.kind === 'pre-migration') {
        results = preMigrationVerifications(data.backup, data.restoreTest, tz);
        subtitle = `${data.label} (${data.target})`;
      } else {
        const ids = defs.flatMap((d) => (d.verifier ? [d.verifier] : []));
        results = await runVerifiers(ids, {
          config: deps.config,
          storage: deps.storage,
          runs: deps.runs,
          retention: deps.retention,
          log,
          now: at,
          ...(signal ? { signal } : {}),
        });
        subtitle = formatInZone(at, tz).slice(0, 14); // `Mon 2026-11-23`
      }
      const items = checklistItems(defs, results);
      const message = checklistMessage(data.kind, items, 1, subtitle, tz);
      const passed = Object.values(results).filter((r) => r.ok).length;
      const failed = Object.values(results).length - passed;

      // A retry after the post (Redis hiccup saving the state) updates that message instead of posting a second one.
      let anchor: MessageRef | undefined = data.anchor;
      if (anchor && (await deps.store.load(anchor))) return { ts: anchor.ts, passed, failed };
      if (anchor) await deps.notifier.update(anchor, message);
      else {
        anchor = await deps.notifier.post(message);
        await job.updateData({ ...data, anchor });
      }
      await deps.store.create(anchor, initialState(data.kind, items, subtitle));
      if (data.kind === 'pre-migration') await replyPreMigrationDrift(deps, data, anchor, log);
      log.info({ ts: anchor.ts, passed, failed }, 'checklist posted');
      return { ts: anchor.ts, passed, failed };
    },
  );
}
