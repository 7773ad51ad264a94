import type { ConditionResult } from '../health/index.ts';
import type { Logger } from '../logger.ts';
import { report, type TargetHealthDeps } from './health-report.ts';

/** A storage no worker has judged for this long (under a kind: the disk, the unchecked targets) is no longer written to. */
export const RETIRED_AFTER_MS = 6 * 3600_000;

/**
 * Notes `where` as judged under `kind` now, and clears the failure of every other subject of that kind no worker has
 * judged for RETIRED_AFTER_MS (BACKUP_DIR moved, another bucket), so its page does not stay open for good; then
 * forgets it. Not sooner: hosts that name one shared storage by two paths judge both every health run, and clearing
 * each other's would page and resolve by turns (second reader).
 */
export async function retireOthers(
  deps: TargetHealthDeps,
  kind: 'disk' | 'unchecked',
  where: string,
  at: Date,
  log: Logger,
  cleared: (subject: string, lastJudged: Date) => ConditionResult,
): Promise<void> {
  for (const other of await deps.state.otherSubjects(kind, where, at)) {
    if (at.getTime() - other.lastJudged.getTime() < RETIRED_AFTER_MS) continue;
    if ((await deps.state.read(other.subject))[kind]?.status === 'failing') {
      for (const a of await deps.state.apply(other.subject, [cleared(other.subject, other.lastJudged)], at)) await report(deps, other.subject, a, log);
    }
    await deps.state.forgetSubject(kind, other.subject);
  }
}
