import { UnrecoverableError, type Job } from 'bullmq';
import { z } from 'zod';
import type { Logger } from '../logger.ts';
import type { Escalation } from '../notifications/escalation.ts';
import { escapeMrkdwn } from '../format.ts';
import type { Notifier } from '../notifications/types.ts';
import { TargetName } from '../target-name.ts';
import { quietNotifier } from './quiet-notifier.ts';

/**
 * Job data is checked at every processor's door. A job whose data does not fit (queued by an older version before
 * an upgrade, or written into Redis by hand) fails at once with a sentence that says so, reported in the channel
 * and paged like any failure of its kind — never a TypeError deep inside a dump.
 */

type Processor<D, R> = (job: Job<D>, token?: string, signal?: AbortSignal) => Promise<R>;

export interface DoorDeps {
  notifier: Notifier;
  /** Without it (a worker kind that does not page) the refusal is said in the channel only. */
  escalation?: Escalation;
  log: Logger;
}

/** `kind` names the job in sentences and is the PagerDuty condition (`backup`, `restore-test`, `restore`). */
export function checkedAtTheDoor<D, R>(schema: z.ZodType<D>, kind: string, deps: DoorDeps, processor: Processor<D, R>): Processor<D, R> {
  return async (job, token, signal) => {
    const parsed = schema.safeParse(job.data);
    if (parsed.success) {
      // What the processor reads is what the schema says: defaults applied, unknown keys dropped.
      job.data = parsed.data;
      return processor(job, token, signal);
    }
    const problems = z.prettifyError(parsed.error).replace(/\n+/g, ' ').slice(0, 400);
    const reason = `The ${kind} job ${job.id ?? '?'} was not run: its data does not fit this version of pg-backup-bot (queued by an older version before an upgrade, or written by hand). ${problems}`;
    await reportRefused(deps, kind, job, reason).catch((err: unknown) => deps.log.error({ err, jobId: job.id }, 'could not report a job with invalid data'));
    throw new UnrecoverableError(reason);
  };
}

async function reportRefused(deps: DoorDeps, kind: string, job: Job, reason: string): Promise<void> {
  const claimed = TargetName.safeParse((job.data as { target?: unknown } | undefined)?.target);
  // A target name that is not one cannot key a page of its own: the bot's own condition takes it.
  const target = claimed.success ? claimed.data : '_bot';
  deps.log.error({ jobId: job.id, kind, reason }, 'job data does not fit its schema; not run');
  const escalation = deps.escalation
    ? await deps.escalation.failed(target, kind, { summary: reason.slice(0, 1000), severity: 'error', details: { jobId: job.id ?? null, kind } })
    : 'nobody was paged';
  await quietNotifier(deps.notifier, deps.log).post({
    text: `:x: ${escapeMrkdwn(reason)}`,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `:x: ${escapeMrkdwn(reason)}` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escalation }] },
    ],
  });
}
