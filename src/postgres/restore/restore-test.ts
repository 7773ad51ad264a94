import { BotError } from '../../errors.ts';
import { newRecordId, recordHead } from '../../storage/index.ts';
import { identityFor } from './decryption.ts';
import { asBotError, type Step, startRun, step } from './restore-run.ts';
import {
  type Compared,
  checksumsFirst,
  compare,
  createScratch,
  type Dropped,
  decompress,
  dropScratch,
  NOTHING_CREATED,
  type Restored,
  restore,
  type Scratch,
  type TestRun,
} from './restore-test-phases.ts';
import { scratchName } from './scratch.ts';
import { deepRecord } from '../verify/index.ts';
import { type Checksums, timedChecksums } from './stored-archive.ts';
import { apartFromRoles } from './checksums.ts';

export type { RestoreTestOptions, RestoreTestOutcome, RestoreTestPhase } from './restore-test-phases.ts';
import type { RestoreTestOptions, RestoreTestOutcome, RestoreTestPhase } from './restore-test-phases.ts';

/**
 * Proves a backup restores: checksums first, then a full restore into a fresh scratch database, an exact
 * comparison with the counts taken in the dump's snapshot, the smoke queries, and always a drop. Problems with
 * the backup come back as sentences in the outcome; an infrastructure failure (server unreachable, no
 * CREATEDB, a cancel) throws a BotError, after dropping what was created.
 */
export async function runRestoreTest(o: RestoreTestOptions): Promise<RestoreTestOutcome> {
  const t = startTest(o);
  if (o.signal?.aborted) throw t.canceled(o.signal.reason);
  // A missing or unreadable identity file stops the test before gigabytes are read for the checksums.
  const identity = await identityFor(o.manifest, o.identityFile);
  t.progress('verifying-checksums');
  const checking = timedChecksums(o);
  const decompression = decompress(o, t, identity);
  // A restore (keep) goes on past a damaged roles file it does not read, and says so; a restore test never does.
  const split = (s: Checksums) => (o.keep ? apartFromRoles(o.manifest, s) : { fatal: s.problems, notes: [] });
  const sums = await checksumsFirst(checking, decompression, (s) => split(s).fatal.length > 0);
  const { fatal, notes } = split(sums);
  if (fatal.length > 0) {
    t.log.warn({ problems: fatal }, 'restore test failed: checksum mismatch');
    return outcome(t, { sums, method: null, restoreMs: 0, compared: null, problems: [...fatal], dropped: true });
  }

  t.progress('restoring');
  // Each step runs only if the one before it succeeded; what stopped it is thrown or reported after the drop.
  const attempt = <T>(fn: () => Promise<T>) => step(fn, (err) => (o.signal?.aborted ? t.canceled(err) : err));
  const archive = await attempt(() => decompression.archive);
  const scratch = archive.ok ? await attempt(() => createScratch(o, t, archive.value)) : archive;
  const restored = scratch.ok ? await attempt(() => restore(o, t, scratch.value)) : scratch;
  const compared = scratch.ok && restored.ok && restored.value.problem === null ? await attempt(() => compare(o, t, scratch.value)) : null;
  await decompression.close();
  const keep = o.keep !== undefined && verified(restored, compared);
  const dropped = !scratch.ok ? NOTHING_CREATED : keep ? KEPT : await dropScratch(o, t);
  return verdict(t, { sums, scratch, restored, compared, dropped, notes });
}

/** A database kept by a full restore: not dropped, on purpose, so nothing to say about it. */
const KEPT: Readonly<Dropped> = Object.freeze({ dropped: false, problems: [] });

/** Restored without a problem and equal to the backup's counts, its settings applied and its smoke queries run. */
function verified(restored: Step<Restored>, compared: Step<Compared> | null): boolean {
  return (
    restored.ok &&
    restored.value.problem === null &&
    restored.value.settingProblems.length === 0 &&
    compared?.ok === true &&
    compared.value.problems.length === 0
  );
}

function startTest(o: RestoreTestOptions): TestRun {
  const name = o.keep?.database ?? scratchName(o.scratchKey, o.scratchScope);
  const run = startRun<RestoreTestPhase>(o, name, { scratch: name }, o.keep ? 'restore' : 'restore test');
  const what = o.keep ? `The restore of ${o.manifest.backupId}` : `The restore test of ${o.manifest.backupId}`;
  const canceled = (cause?: unknown) =>
    new BotError('canceled', `${what} was canceled; its ${o.keep ? 'new' : 'scratch'} database ${name} was dropped.`, { cause });
  return { ...run, canceled };
}

/** The outcome once the scratch database is gone, or the failure that stopped the test, thrown. */
function verdict(
  t: TestRun,
  r: { sums: Checksums; scratch: Step<Scratch>; restored: Step<Restored>; compared: Step<Compared> | null; dropped: Dropped; notes: string[] },
): RestoreTestOutcome {
  const stop = !r.restored.ok ? r.restored : r.compared !== null && !r.compared.ok ? r.compared : null;
  if (stop && stop.failure !== undefined) {
    const err = asBotError(stop.failure, t.ctx);
    if (r.dropped.dropped) throw err;
    t.log.error({ scratch: t.database }, 'scratch database left behind after a failure');
    // Said where the person reads it (the server went away mid-restore, most often), not only in the log.
    // A cancel's own sentence says the database was dropped: not so here.
    const why = err.code === 'canceled' ? err.userMessage.replace(/; its (new|scratch) database \S+ was dropped\.$/, '.') : err.userMessage;
    throw new BotError(
      err.code,
      `${why} ${t.database} could not be dropped and may be left on ${t.ctx.server}, part-restored: drop it once the server answers (\`DROP DATABASE "${t.database}"\`).`,
      { cause: err },
    );
  }
  const restored = r.restored.ok ? r.restored.value : null;
  const compared = r.compared?.ok ? r.compared.value : null;
  const problems = [stop?.problem, restored?.problem, ...(restored?.settingProblems ?? []), ...(compared?.problems ?? []), ...r.dropped.problems].filter(
    (p) => typeof p === 'string',
  );
  const result = outcome(t, {
    sums: r.sums,
    method: r.scratch.ok ? r.scratch.value.method : null,
    restoreMs: restored?.restoreMs ?? 0,
    compared,
    problems,
    dropped: r.dropped.dropped,
    notes: r.notes,
  });
  const { passed, restoreMs, verifyMs, restoredBytes } = result;
  t.log.info({ passed, restoreMs, verifyMs, restoredBytes, problems: problems.length }, 'restore test finished');
  return result;
}

function outcome(
  t: TestRun,
  r: {
    sums: Checksums;
    method: Scratch['method'] | null;
    restoreMs: number;
    compared: Compared | null;
    problems: string[];
    dropped: boolean;
    notes?: string[];
  },
): RestoreTestOutcome {
  return {
    ...recordHead(t.manifest, t.startedAt, t.now()),
    id: newRecordId(t.startedAt),
    restoreMs: r.restoreMs,
    verifyMs: r.sums.ms + (r.compared?.verifyMs ?? 0),
    restoredBytes: r.compared?.restoredBytes ?? null,
    passed: r.problems.length === 0,
    checked: {
      checksums: r.sums.checksums,
      tables: r.compared?.tables ?? 0,
      objects: r.compared?.objects ?? [],
      smokeQueries: r.compared?.smokeQueries ?? [],
      ...(r.compared ? deepRecord(r.compared.deep) : {}),
    },
    problems: r.problems,
    database: t.database,
    dropped: r.dropped,
    selection: null,
    correctiveActions: null,
    restoreMethod: r.method,
    ...(r.notes?.length ? { notes: r.notes } : {}),
  };
}
