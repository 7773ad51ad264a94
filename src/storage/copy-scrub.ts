import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { copyBackup } from './copy.ts';
import { type ScrubReport, type ScrubState, scrubBackups } from './scrub.ts';
import type { Storage } from './types.ts';

/** One copy's scrub: what it found (or why it could not run), and what became of each damaged copy. */
export interface CopyScrubOutcome {
  destination: string;
  report: ScrubReport | string;
  /** Damaged copies deleted there and copied again from the primary, checked on the way. */
  repaired: Array<{ target: string; backupId: string; why: string }>;
  /** Damaged copies left marked damaged (left out of that copy's listings), with why they were not copied again. */
  notRepaired: Array<{ target: string; backupId: string; why: string; because: string }>;
}

/**
 * The checksum scrub of the off-site copies (`S3_MODE=copy`), run after the primary's: each copy read back against
 * its manifests as the primary is (scrub.ts: a seventh of its bytes a run, longest unread first, damage being what
 * two more reads agree on), so a copy that rotted or was changed in the bucket is found while the primary still holds
 * the backup, not on the day the primary is lost. A damaged copy is repaired: deleted there and copied again from
 * the primary (every byte checked against the manifest on the way), when the primary holds that very backup
 * (same files, same checksums) and does not know it damaged. Otherwise it stays marked damaged in the copy.
 * `states[i]` is copy i's scrub memory: each copy keeps its own order.
 */
export async function scrubCopies(o: {
  primary: Storage;
  copies: readonly Storage[];
  states: readonly ScrubState[];
  now: Date;
  log: Logger;
  signal?: AbortSignal | undefined;
  all?: boolean;
}): Promise<CopyScrubOutcome[]> {
  const out: CopyScrubOutcome[] = [];
  for (const [i, copy] of o.copies.entries()) {
    const state = o.states[i];
    if (!state || o.signal?.aborted) continue;
    const destination = copy.describe();
    const log = o.log.child({ destination });
    const outcome: CopyScrubOutcome = { destination, report: '', repaired: [], notRepaired: [] };
    try {
      outcome.report = await scrubBackups({ storage: copy, state, now: o.now, log, signal: o.signal, all: o.all === true });
    } catch (err) {
      log.error({ err }, 'the checksum scrub of a copy could not run');
      outcome.report = toUserMessage(err);
    }
    if (typeof outcome.report !== 'string') {
      for (const d of outcome.report.damaged) {
        const because = await repair(o.primary, copy, d, log, o.signal);
        if (because === null) outcome.repaired.push(d);
        else outcome.notRepaired.push({ ...d, because });
      }
    }
    out.push(outcome);
  }
  return out;
}

/** Copies a damaged copy again from the primary; null when done, else why not (the copy stays marked damaged). */
async function repair(primary: Storage, copy: Storage, d: { target: string; backupId: string }, log: Logger, signal?: AbortSignal): Promise<string | null> {
  let deleted = false;
  try {
    const [source, damaged] = await Promise.all([
      primary.list(d.target).then((all) => all.find((m) => m.backupId === d.backupId)),
      copy.readManifest(d.target, d.backupId),
    ]);
    if (!source) {
      const alsoDamaged = primary.damaged?.(d.target).some((x) => x.backupId === d.backupId);
      const state = alsoDamaged ? 'has it damaged too' : 'no longer holds it';
      return `the primary (${primary.describe()}) ${state}: take a new backup (\`/backup now ${d.target}\`) if you counted on it`;
    }
    const files = (m: typeof source) => JSON.stringify(m.artifacts.map((a) => [a.file, a.bytes, a.sha256]).sort());
    if (files(source) !== files(damaged)) return `the primary's backup of that name has other files or checksums than the copy's manifest`;
    await copy.deleteBackup(d.target, d.backupId);
    deleted = true;
    await copyBackup(primary, copy, source, { log, ...(signal ? { signal } : {}) });
    log.warn({ target: d.target, backupId: d.backupId }, 'a damaged copy was copied again from the primary');
    return null;
  } catch (err) {
    log.error({ err, target: d.target, backupId: d.backupId }, 'a damaged copy could not be copied again');
    return `${deleted ? 'it was removed from the copy, and ' : ''}copying it again failed: ${toUserMessage(err)}`;
  }
}
