import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BotError } from '../../errors.ts';
import { recordHead } from '../../storage/index.ts';
import { checkIdentityOpensBackup, identityFor } from './decryption.ts';
import { asBotError, type Step, startRun, step } from './restore-run.ts';
import { dropDatabase, isScratchName } from './scratch.ts';
import {
  type Counted,
  countRestored,
  type Planned,
  planRestore,
  prepareTarget,
  type Restored,
  restoreSelection,
  type SelectiveRun,
  type Target,
} from './selective-steps.ts';
import { type Checksums, closeArchive, openStoredArchive, restoreTools, timedChecksums } from './stored-archive.ts';
import { apartFromRoles } from './checksums.ts';

export type { SelectiveRestoreOptions, SelectiveRestoreOutcome, SelectiveRestorePhase } from './selective-steps.ts';
import type { SelectiveRestoreOptions, SelectiveRestoreOutcome, SelectiveRestorePhase } from './selective-steps.ts';

/**
 * Restores chosen tables or schemas of a backup: checksums first, then exactly the planned archive entries
 * (see selection-plan.ts) through `pg_restore -L`. Into a new database it runs in parallel and the database is
 * dropped again if the restore fails; into an existing one the selected objects are dropped and recreated in
 * one transaction (replace-in-place.ts), so a failure anywhere leaves that database as it was.
 */
export async function runSelectiveRestore(o: SelectiveRestoreOptions): Promise<SelectiveRestoreOutcome> {
  const r = startRestore(o);
  if (o.signal?.aborted) throw new BotError('canceled', 'The restore was canceled before it started; nothing was changed.');
  const identity = await identityFor(o.manifest, o.identityFile);
  r.progress('verifying-checksums');
  const sums = await timedChecksums(o);
  // Never the roles file's: a selective restore takes no roles from the backup.
  const { fatal, notes: rolesNotes } = apartFromRoles(o.manifest, sums);
  if (fatal.length > 0) {
    const problems = [...fatal, 'nothing was restored'];
    return outcome(o, r, { sums, notes: [], target: null, restoreMs: 0, counted: null, problems, dropped: false });
  }

  // Checksums passed, so the stored header is intact: a failure to open it now means the key is wrong.
  await checkIdentityOpensBackup(o.manifest, o.storage, identity);
  const tools = await restoreTools(o);
  const work = await mkdtemp(join(o.tempDir ?? tmpdir(), 'pgbb-select-'));
  r.progress('planning');
  // Each step runs only if the one before it succeeded; what stopped it is thrown or reported after the cleanup.
  const canceled = (err: unknown) => new BotError('canceled', `The restore into ${r.database} was canceled; nothing was kept.`, { cause: err });
  const attempt = <T>(fn: () => Promise<T>) => step(fn, (err) => (o.signal?.aborted ? canceled(err) : err));
  const archive = await attempt(() => openStoredArchive(o, tools, { identity, signal: o.signal, log: r.log }));
  const planned = archive.ok ? await attempt(() => planRestore(o, r, archive.value)) : archive;
  const target = planned.ok ? await attempt(() => prepareTarget(o, r, planned.value)) : planned;
  const restored = target.ok ? await attempt(() => restoreSelection(o, r, target.value, tools.psql, work)) : target;
  const counted = restored.ok && restored.value.problem === null ? await attempt(() => countRestored(o, r, restored.value.plan)) : null;
  await closeArchive(archive.ok ? archive.value : undefined, r.log);
  await rm(work, { recursive: true, force: true });
  const failed = !restored.ok || restored.value.problem !== null || counted?.ok === false;
  const dropped = target.ok && target.value.created && failed ? await dropNewDatabase(o, r) : false;
  return verdict(o, r, { sums, planned, target, restored, counted, dropped, rolesNotes });
}

function startRestore(o: SelectiveRestoreOptions): SelectiveRun {
  const db = o.into.database;
  const run = startRun<SelectiveRestorePhase>(o, db, { into: db, create: o.into.create });
  if (!db || Buffer.byteLength(db) > 63 || isScratchName(db)) {
    throw new BotError('bad_request', `"${db}" cannot be restored into: a database name has 1–63 bytes and must not be a restore-test scratch name.`);
  }
  return run;
}

/**
 * A half-restored new database only confuses: it is ours, so it goes. One restored with a count that differs from
 * the manifest stays: its data may still be what someone needs, and the problem says so.
 */
async function dropNewDatabase(o: SelectiveRestoreOptions, r: SelectiveRun): Promise<boolean> {
  return dropDatabase(o.serverUrl, r.database).then(
    () => true,
    (err: unknown) => {
      r.log.error({ err }, 'could not drop the database of a failed restore');
      return false;
    },
  );
}

/** The outcome once the cleanup is done, or the failure that stopped the restore, thrown. */
function verdict(
  o: SelectiveRestoreOptions,
  r: SelectiveRun,
  s: {
    sums: Checksums;
    planned: Step<Planned>;
    target: Step<Target>;
    restored: Step<Restored>;
    counted: Step<Counted> | null;
    dropped: boolean;
    rolesNotes: string[];
  },
): SelectiveRestoreOutcome {
  const stop = !s.restored.ok ? s.restored : s.counted !== null && !s.counted.ok ? s.counted : null;
  if (stop && stop.failure !== undefined) throw asBotError(stop.failure, r.ctx);
  const restored = s.restored.ok ? s.restored.value : null;
  const counted = s.counted?.ok ? s.counted.value : null;
  const problems = [...(stop && stop.problem !== null ? [stop.problem, 'nothing was restored'] : []), ...(restored?.problem ? [restored.problem] : [])];
  const result = outcome(o, r, {
    sums: s.sums,
    notes: [...(s.planned.ok ? s.planned.value.plan.notes : []), ...s.rolesNotes],
    target: s.target.ok ? s.target.value : null,
    restoreMs: restored?.restoreMs ?? 0,
    counted,
    problems: [...problems, ...(counted?.problems ?? [])],
    dropped: s.dropped,
  });
  r.log.info({ restoreMs: result.restoreMs, tables: result.restoredTables.length, problems: result.problems.length }, 'selective restore finished');
  return result;
}

function outcome(
  o: SelectiveRestoreOptions,
  r: SelectiveRun,
  s: { sums: Checksums; notes: string[]; target: Target | null; restoreMs: number; counted: Counted | null; problems: string[]; dropped: boolean },
): SelectiveRestoreOutcome {
  const restoredTables = s.counted?.tables ?? [];
  return {
    ...recordHead(r.manifest, r.startedAt, r.now()),
    restoreMs: s.restoreMs,
    verifyMs: s.sums.ms + (s.counted?.verifyMs ?? 0),
    restoredBytes: null,
    passed: null,
    checked: { checksums: s.sums.checksums, tables: restoredTables.length, objects: [], smokeQueries: [] },
    problems: s.problems,
    database: r.database,
    dropped: s.dropped,
    selection: { tables: o.tables, schemas: o.schemas, into: o.into.create ? null : r.database, created: s.target?.created ?? false },
    correctiveActions: null,
    restoreMethod: s.target?.method ?? null,
    restoredTables,
    notes: [...s.notes],
  };
}
