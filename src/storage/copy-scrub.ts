import { isBotError, toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { verifyChecksums } from '../postgres/restore/checksums.ts';
import { rewriteDamaged, sameArtifacts } from './copy.ts';
import { confirmDamage, type ScrubReport, type ScrubState, scrubBackups } from './scrub.ts';
import type { Storage } from './types.ts';

/** A damaged backup; `marked`: its damage mark is written (scrub.ts), else only a listing found it (a file missing) or marking failed. */
type Damaged = { target: string; backupId: string; why: string; marked?: true };

/** One copy's scrub: what it found (or why it could not run), and what became of each damaged backup there. */
export interface CopyScrubOutcome {
  destination: string;
  report: ScrubReport | string;
  /** Damaged there, rewritten from the primary and read back whole: no longer damaged. */
  repaired: Damaged[];
  /** Still marked damaged there (left out of that copy's listings), with why: nothing to rewrite them from, or a rewrite failed. */
  notRepaired: Array<Damaged & { because: string; kind: 'unavailable' | 'failed' }>;
}

/** What was mended on the primary from the copies, and what was tried and failed. */
export interface Healing {
  /** `<target>/<backupId>` → the copy it was rewritten from. */
  healed: Map<string, string>;
  /** Rewrites from a copy that holds the backup that did not end whole: it stays marked damaged on the primary. */
  failed: Array<Damaged & { destination: string; because: string }>;
  /** Copies found damaged too on the way, and marked so there. */
  copiesFoundDamaged: Array<Damaged & { destination: string }>;
  /** Primary backups found damaged while a copy was to be rewritten from them, and marked so. */
  primaryFoundDamaged: Damaged[];
}

export interface RepairOptions {
  primary: Storage;
  /** Each off-site copy with its own scrub memory (its order of reading). */
  copies: ReadonlyArray<{ storage: Storage; state: ScrubState }>;
  now: Date;
  log: Logger;
  signal?: AbortSignal | undefined;
  /** Every backup of each copy, not a seventh (`scrub --all`). */
  all?: boolean;
  /** Backups restores and restore tests are reading now (jobs/backups-in-use.ts), asked before each rewrite; null: unknown (no Redis), nothing is rewritten. */
  inUse: () => Promise<ReadonlySet<string> | null>;
  /**
   * Claims a backup for its rewrite (jobs/redis-lock.ts repairClaim): the lock to release, or why another process
   * has it. The worker's retention job and the CLI's `scrub` may meet on the same damaged backup.
   */
  claim: (target: string, backupId: string) => Promise<{ release(): Promise<void> } | string>;
  /** Said to the audit trail: one line per backup rewritten. */
  onRewritten?: (what: { target: string; backupId: string; from: string; to: string }) => Promise<unknown>;
}

/**
 * What follows the primary's checksum scrub (scrub.ts) where backups are also copied off-site (`S3_MODE=copy`):
 * 1. the primary's damaged backups (`primaryDamaged`: found now, marked, or known before) rewritten from the first
 *    copy that holds each whole;
 * 2. each copy read back as the primary is (a seventh of its bytes a run, longest unread first), and a damaged
 *    backup there (found now or known before) rewritten from the primary.
 * A rewrite deletes nothing: each file is replaced in place once its replacement is whole (checked against the
 * manifest on the way), the result is read back, and only then is the damage mark removed. Until then the backup
 * stays marked damaged (left out of listings; on the primary, health's `damaged` pages), and the next run tries again.
 */
export async function repairFromCopies(o: RepairOptions, primaryDamaged: readonly Damaged[]): Promise<{ healing: Healing; copies: CopyScrubOutcome[] }> {
  const healing: Healing = { healed: new Map(), failed: [], copiesFoundDamaged: [], primaryFoundDamaged: [] };
  for (const d of primaryDamaged) {
    for (const { storage: copy } of o.copies) {
      if (o.signal?.aborted) break;
      const r = await rewrite(copy, o.primary, d, { from: 'copy', to: 'primary' }, o);
      if (r.kind === 'done') {
        healing.healed.set(`${d.target}/${d.backupId}`, copy.describe());
        break;
      }
      if (r.sourceMarked) healing.copiesFoundDamaged.push({ ...d, destination: copy.describe(), why: r.sourceMarked });
      if (r.kind === 'failed') healing.failed.push({ ...d, destination: copy.describe(), because: r.because });
    }
  }
  const copies: CopyScrubOutcome[] = [];
  for (const { storage: copy, state } of o.copies) {
    if (o.signal?.aborted) break;
    const destination = copy.describe();
    const log = o.log.child({ destination });
    const outcome: CopyScrubOutcome = { destination, report: '', repaired: [], notRepaired: [] };
    copies.push(outcome);
    try {
      outcome.report = await scrubBackups({ storage: copy, state, now: o.now, log, signal: o.signal, all: o.all === true });
    } catch (err) {
      log.error({ err }, 'the checksum scrub of a copy could not run');
      outcome.report = toUserMessage(err);
      continue;
    }
    // Known damaged before too: a rewrite that could not happen on an earlier run is tried again; one with nothing to
    // rewrite from was said when it was found.
    const found = new Set<Damaged>(outcome.report.damaged);
    for (const d of [...found, ...outcome.report.alreadyDamaged]) {
      const r = await rewrite(o.primary, copy, d, { from: 'primary', to: 'copy' }, { ...o, log });
      if (r.kind !== 'done' && r.sourceMarked) healing.primaryFoundDamaged.push({ ...d, why: r.sourceMarked });
      if (r.kind === 'done') outcome.repaired.push(d);
      else if (r.kind === 'failed' || found.has(d)) outcome.notRepaired.push({ ...d, because: r.because, kind: r.kind });
    }
  }
  return { healing, copies };
}

type Sides = { from: 'primary' | 'copy'; to: 'primary' | 'copy' };
/** `unavailable`: the source has no whole copy to give (said once, where the damage is said); `failed`: a rewrite went wrong. */
type Rewrite = { kind: 'done' } | { kind: 'unavailable' | 'failed'; because: string; sourceMarked?: string };

/**
 * Rewrites a backup damaged on `to` from the same backup on `from` (same files, sizes and checksums), read whole on
 * `from` first; then reads `to` back and clears its damage mark. Never while a restore or restore test reads it.
 */
async function rewrite(
  from: Storage,
  to: Storage,
  d: Damaged,
  sides: Sides,
  o: Pick<RepairOptions, 'log' | 'signal' | 'inUse' | 'onRewritten' | 'claim'>,
): Promise<Rewrite> {
  const { target, backupId } = d;
  const busy = async () => {
    const reading = await o.inUse();
    if (!reading) return 'the restores and restore tests running now are unknown (no Redis), so it is not rewritten; the worker’s next scrub does it';
    return reading.has(backupId) ? 'a restore or restore test is reading it now; the next run tries again' : null;
  };
  try {
    const [source, damaged] = await Promise.all([from.list(target).then((all) => all.find((m) => m.backupId === backupId)), to.readManifest(target, backupId)]);
    if (!source) {
      const alsoDamaged = from.damaged?.(target).some((x) => x.backupId === backupId);
      return { kind: 'unavailable', because: `the ${sides.from} (${from.describe()}) ${alsoDamaged ? 'has it damaged too' : 'does not hold it'}` };
    }
    if (!sameArtifacts(source, damaged)) return { kind: 'unavailable', because: `the ${sides.from}'s backup of that name has other files or checksums` };
    const reading = await busy();
    if (reading) return { kind: 'failed', because: reading };
    const read = await verifyChecksums({ manifest: source, storage: from, signal: o.signal });
    if (read.problems.length) {
      // Marked there once two more reads agree, so no later run reads it for nothing; else it was a bad read.
      const marked = await confirmDamage(
        from,
        source,
        { by: `a repair of the ${sides.to} from it`, checksums: read.checksums },
        { log: o.log, signal: o.signal },
      );
      return marked
        ? { kind: 'unavailable', because: `the ${sides.from}'s backup is damaged too (${read.problems.join('; ')})`, sourceMarked: marked }
        : { kind: 'failed', because: `the ${sides.from}'s backup did not read back the same twice; the next run tries again` };
    }
    const readingNow = await busy();
    if (readingNow) return { kind: 'failed', because: readingNow };
    const claim = await o.claim(target, backupId);
    if (typeof claim === 'string') return { kind: 'failed', because: claim };
    try {
      // Deleted since it was found (retention holds this claim while it deletes one past its deadline): nothing to mend.
      const still = await to.readManifest(target, backupId).catch((e: unknown) => (isBotError(e) && e.code === 'backup_not_found' ? null : Promise.reject(e)));
      if (!still) return { kind: 'unavailable', because: `the ${sides.to}'s backup was deleted meanwhile (past its deadline)` };
      // Marked when we found it, and no longer: mended by the process that held the claim before us (it read it back
      // whole and removed the mark). A damage only a listing found (no mark) cannot be told from whole this way.
      if (d.marked && to.whyUnrestorable && (await to.whyUnrestorable(damaged)) === null) return { kind: 'done' };
      // Marked first where only a listing found it: a rewrite cut short leaves it damaged, never "whole" half new.
      if (!d.marked) await to.markDamaged?.(target, backupId, d.why);
      await rewriteDamaged(from, to, source, o.signal);
      const check = await verifyChecksums({ manifest: source, storage: to, signal: o.signal });
      if (check.problems.length)
        return { kind: 'failed', because: `rewritten, it does not read back whole (${check.problems.join('; ')}); the next run tries again` };
      await to.unmarkDamaged?.(target, backupId);
    } finally {
      await claim.release();
    }
    o.log.warn({ target, backupId, from: from.describe(), to: to.describe() }, 'a damaged backup was rewritten from another storage');
    await o.onRewritten?.({ target, backupId, from: from.describe(), to: to.describe() })?.catch(() => undefined);
    return { kind: 'done' };
  } catch (err) {
    o.log.error({ err, target, backupId, from: from.describe(), to: to.describe() }, 'a damaged backup could not be rewritten');
    return { kind: 'failed', because: `rewriting it failed: ${toUserMessage(err)}; it stays marked damaged and the next run tries again` };
  }
}
