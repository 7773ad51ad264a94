import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { verifyChecksums } from '../postgres/restore/checksums.ts';
import { copyBackup } from './copy.ts';
import { confirmDamage, type ScrubReport, type ScrubState, scrubBackups } from './scrub.ts';
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
  /** Backups restores and restore tests are reading now (jobs/backups-in-use.ts): not deleted to be copied again. */
  inUse?: () => Promise<ReadonlySet<string>>;
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
        const not = await repair(o.primary, copy, d, { from: 'primary', to: 'copy' }, log, o.signal ?? undefined, await o.inUse?.());
        if (!not) outcome.repaired.push(d);
        else outcome.notRepaired.push({ ...d, because: not.because });
      }
    }
    out.push(outcome);
  }
  return out;
}

/** Which side a repair reads from and writes to, for its sentences. */
type Sides = { from: 'primary' | 'copy'; to: 'primary' | 'copy' };

/** Why a repair did not happen; `sourceMarked`: the source read back damaged too, and was marked so (why). */
type NotRepaired = { because: string; sourceMarked?: string };

/**
 * Replaces a damaged backup on `to` with the same backup from `from`: null when done, else why not (it stays marked
 * damaged). Only when `from` lists that very backup (same files, same checksums) and it reads back whole; the
 * damaged files are deleted then, and every byte is checked against the manifest again on the way (copyBackup).
 */
async function repair(
  from: Storage,
  to: Storage,
  d: { target: string; backupId: string },
  sides: Sides,
  log: Logger,
  signal?: AbortSignal,
  busy?: ReadonlySet<string>,
): Promise<NotRepaired | null> {
  // Never deleted under a restore or restore test that reads it (as retention spares it): the next run tries again.
  if (busy?.has(d.backupId)) return { because: `a restore or restore test is reading it now; the next run tries again` };
  let deleted = false;
  try {
    const [source, damaged] = await Promise.all([
      from.list(d.target).then((all) => all.find((m) => m.backupId === d.backupId)),
      to.readManifest(d.target, d.backupId),
    ]);
    if (!source) {
      const alsoDamaged = from.damaged?.(d.target).some((x) => x.backupId === d.backupId);
      return { because: `the ${sides.from} (${from.describe()}) ${alsoDamaged ? 'has it damaged too' : 'does not hold it'}` };
    }
    const files = (m: typeof source) => JSON.stringify(m.artifacts.map((a) => [a.file, a.bytes, a.sha256]).sort());
    if (files(source) !== files(damaged))
      return { because: `the ${sides.from}'s backup of that name has other files or checksums than the ${sides.to}'s manifest` };
    // Read whole before anything is deleted: a source that turns out damaged too must not cost the damaged backup its
    // listing (and health its page). Marked there once two more reads agree, so no later run reads it for nothing.
    const read = await verifyChecksums({ manifest: source, storage: from, signal });
    if (read.problems.length) {
      const marked = await confirmDamage(from, source, { by: `a repair of the ${sides.to} from it`, checksums: read.checksums }, { log, signal });
      return {
        because: `the ${sides.from}'s backup does not match its manifest either (${read.problems.join('; ')})`,
        ...(marked ? { sourceMarked: marked } : {}),
      };
    }
    await to.deleteBackup(d.target, d.backupId);
    deleted = true;
    await copyBackup(from, to, source, { log, ...(signal ? { signal } : {}) });
    log.warn({ target: d.target, backupId: d.backupId, from: from.describe(), to: to.describe() }, 'a damaged backup was copied again');
    return null;
  } catch (err) {
    log.error({ err, target: d.target, backupId: d.backupId, from: from.describe(), to: to.describe() }, 'a damaged backup could not be copied again');
    return { because: `${deleted ? `its damaged files were removed from the ${sides.to}, and ` : ''}copying it again failed: ${toUserMessage(err)}` };
  }
}

/** What healing the primary from the copies did: the copy each healed backup came from, and copies found damaged on the way. */
export interface Healing {
  healed: Map<string, string>;
  copiesFoundDamaged: Array<{ target: string; backupId: string; destination: string; why: string }>;
}

/**
 * Backups the primary's scrub found damaged (or already knew damaged), copied back from the first off-site copy that
 * holds them intact: the primary is whole again and nothing pages. `healed` maps `<target>/<backupId>` to the copy
 * it came from; a backup no copy could give stays marked damaged (health's `damaged` pages it). A copy found damaged
 * on the way is marked so there and named in `copiesFoundDamaged`.
 */
export async function healFromCopies(
  primary: Storage,
  copies: readonly Storage[],
  damaged: ReadonlyArray<{ target: string; backupId: string }>,
  o: { log: Logger; signal?: AbortSignal | undefined; inUse?: () => Promise<ReadonlySet<string>> },
): Promise<Healing> {
  const out: Healing = { healed: new Map(), copiesFoundDamaged: [] };
  if (damaged.length === 0 || copies.length === 0) return out;
  const busy = await o.inUse?.();
  for (const d of damaged) {
    for (const copy of copies) {
      if (o.signal?.aborted) return out;
      const not = await repair(copy, primary, d, { from: 'copy', to: 'primary' }, o.log, o.signal ?? undefined, busy);
      if (not?.sourceMarked) out.copiesFoundDamaged.push({ ...d, destination: copy.describe(), why: not.sourceMarked });
      if (not) continue;
      out.healed.set(`${d.target}/${d.backupId}`, copy.describe());
      break;
    }
  }
  return out;
}
