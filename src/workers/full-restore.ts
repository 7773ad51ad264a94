import { changedSinceShown } from '../restore-scope.ts';
import { checkedSummary } from '../notifications/restore-messages.ts';
import type { Logger } from '../logger.ts';
import { formatCount, formatTime } from '../format.ts';
import type { RestoreJobData } from '../jobs/queues.ts';
import { BotError, isBotError, toUserMessage } from '../errors.ts';
import {
  databaseExists,
  describeDatabase,
  dropDatabase,
  replacedName,
  restoreGlobalsOf,
  rolesLeft,
  rolesLine,
  runRestoreTest,
  reopenAfterDeadSwap,
  stagingName,
  swapDatabases,
  withReplacementLock,
  type SelectiveRestoreOutcome,
} from '../postgres/restore/index.ts';
import { serverLabel } from '../postgres/index.ts';
import { serverSilence } from '../postgres/connection.ts';
import { totalRows, type Manifest } from '../storage/index.ts';
import type { Config } from '../config.ts';
import type { Storage } from '../storage/index.ts';
import { restoreTestSettings } from './restore-test-settings.ts';
import { isWholeDatabase } from '../restore-scope.ts';

/** `/restore <backup-id>` with nothing selected: the whole database, into a new one. */
export function isFullRestore(data: Pick<RestoreJobData, 'tables' | 'schemas' | 'into'>): boolean {
  return isWholeDatabase(data) && data.into.create;
}

/** `/restore <backup-id> --into=<database>` with nothing selected: that database replaced by the backup. */
export function isReplacement(data: Pick<RestoreJobData, 'tables' | 'schemas' | 'into'>): boolean {
  return isWholeDatabase(data) && !data.into.create;
}

/**
 * A full restore is a restore test that keeps its database (postgres/restore `keep`): checksums, the source's
 * locale and settings, pg_restore, the comparison with the archive at the target's `verify` level (content,
 * definitions, large objects, pg_amcheck), the counts of every table and object, the smoke queries.
 * The new database stays only when all of that passed; otherwise it is dropped and the verdict says why.
 */
export async function runFullRestore(
  deps: { config: Config; storage: Storage },
  o: {
    /** Restore owners and grants too (a replacement, on the server whose roles they are). */
    owners?: boolean;
    /** Onto another server than the target's, named as given (the CLI's --to-url-env): its roles may not be the source's. */
    newServer?: string | undefined;
    manifest: Manifest;
    serverUrl: string;
    database: string;
    jobId: string;
    signal?: AbortSignal | undefined;
    log: Logger;
    progress: (p: { phase: string; detail?: string }) => void;
  },
): Promise<SelectiveRestoreOutcome> {
  const { id: _id, ...outcome } = await runRestoreTest({
    manifest: o.manifest,
    storage: deps.storage,
    serverUrl: o.serverUrl,
    scratchKey: `restore:${o.jobId}`,
    // A full restore checks its copy as the target's restore tests do (the config's `verify`).
    verify: deps.config.targets.find((t) => t.name === o.manifest.target)?.verify ?? 'content',
    ...restoreTestSettings(deps.config),
    keep: { database: o.database },
    owners: o.owners,
    ...(o.signal ? { signal: o.signal } : {}),
    log: o.log,
    onProgress: o.progress,
  });
  const where = `${o.database} on ${serverLabel(o.serverUrl)}`;
  const verdictNotes = outcome.passed
    ? [
        `${where}: ${formatCount(totalRows(o.manifest))} rows; checked: ${checkedSummary(outcome)}.`,
        // pg_restore fills materialized views by refreshing them: contents as of the restored data, not as dumped.
        ...(o.manifest.verification.objects.materializedViews > 0
          ? [
              `${o.manifest.verification.objects.materializedViews} materialized ${o.manifest.verification.objects.materializedViews === 1 ? 'view was' : 'views were'} refreshed from the restored tables, not restored as dumped.`,
            ]
          : []),
        // Without owners, restored as restore tests restore (--no-owner --no-acl): the source's roles need not exist here.
        ...(o.owners
          ? []
          : [
              `Owners and grants were not restored, the database's own neither (its CONNECT grants): every object belongs to the bot's role. ${
                o.newServer
                  ? `On a new server the source's roles may not exist: to restore them first, and owners and grants with them, drop this copy and restore again with --with-globals; or create and grant the application's role before pointing it at ${o.database}.`
                  : `Grant the application's role access before pointing it at ${o.database}.`
              }`,
            ]),
      ]
    : outcome.restoredBytes === null && outcome.checked.tables === 0
      ? // Not "before it held anything": a restore refused on a missing role had created objects, then dropped them (QA).
        [`No database was left on ${serverLabel(o.serverUrl)}: the restore stopped before ${o.database} could be verified, and nothing of it is kept.`]
      : [`${where} was dropped: a database the bot leaves behind is one it verified.`];
  // The restore's own notes (a damaged roles file it did not need) after what the verdict says of the database.
  const notes = [...verdictNotes, ...(outcome.notes ?? [])];
  return { ...outcome, selection: { tables: [], schemas: [], into: null, created: true }, restoredTables: [], notes };
}

/**
 * Replaces a database with the backup: a full restore into a staging database beside it (owners and grants
 * included: the roles are the server's own), verified; only then the swap by name (postgres/restore swap.ts).
 * A restore or check that fails drops the staging copy and leaves the database untouched.
 */
/**
 * Run around the swap by the worker (jobs/replacement-marks.ts): holds off backups of the database replaced, and
 * marks one running as ended by this replacement; `notes` say so in the verdict.
 */
export type AroundSwap = (keptAs: string) => Promise<{ release(swapped: boolean): Promise<void>; notes: string[] }>;
type ReplaceOptions = Parameters<typeof runFullRestore>[1] & { now: Date; expectedOid?: number | undefined; aroundSwap?: AroundSwap | undefined };

export function runReplacement(deps: { config: Config; storage: Storage }, o: ReplaceOptions): Promise<SelectiveRestoreOutcome> {
  // First, before any lock: an earlier attempt killed mid-swap left the live database refusing connections; it must
  // not stay so, even if this attempt is then refused. Then one at a time per database, across workers and the CLI
  // (swap.ts); the oid check below then sees the first's swap.
  return reopenAfterDeadSwap(o.serverUrl, o.database, stagingName(o.jobId)).then((reopened) => {
    if (reopened) o.log.warn({ staging: stagingName(o.jobId) }, reopened);
    return withReplacementLock(o.serverUrl, o.database, o.jobId, (held) => replace(deps, o, held, reopened ? [`${reopened}.`] : []));
  });
}

async function replace(
  deps: { config: Config; storage: Storage },
  o: ReplaceOptions,
  held: () => Promise<void>,
  earlier: string[],
): Promise<SelectiveRestoreOutcome> {
  const staging = stagingName(o.jobId);
  const before = await describeDatabase(o.serverUrl, o.database);
  if (!before) throw new BotError('pg_database_missing', `There is no database ${o.database} on ${serverLabel(o.serverUrl)} to replace; nothing was changed.`);
  // Confirmed in Slack for the database of that oid: another replacement (or an earlier attempt of this job) that
  // swapped it since must not be followed by a second one that moves the fresh copy aside.
  if (o.expectedOid !== undefined && before.oid !== o.expectedOid) throw new BotError('bad_request', changedSinceShown(o.database, o.manifest.backupId, true));
  // Named after the job: one that is there is what an earlier attempt of this job left when its worker was killed
  // (before the swap, or the swap's transaction rolled back). Ours by construction, never the live database.
  if (await databaseExists(o.serverUrl, staging)) {
    o.log.warn({ staging }, 'dropping the staging database an earlier attempt of this job left');
    await dropDatabase(o.serverUrl, staging);
  }
  // Whatever stops it before the swap (a cancel, the server gone) leaves the live database as it was: said (QA).
  const restored = await runFullRestore(deps, { ...o, database: staging, owners: true }).catch(async (err: unknown) => {
    if (!(err instanceof BotError) || err.userMessage.includes('not touched')) throw err;
    // The database is untouched, but the server itself may have stopped (its disk filled by the copy): said.
    const silent = await serverSilence(o.serverUrl);
    const down = silent
      ? ` The server at ${serverLabel(o.serverUrl)} does not answer now (${silent}): it may have stopped, for every database on it (its disk full? see its log), and needs looking at first.`
      : '';
    throw new BotError(err.code, `${err.userMessage} ${o.database} was not touched.${down}`, { cause: err, detail: err.message });
  });
  const selection = { tables: [], schemas: [], into: o.database, created: false };
  if (!restored.passed) return { ...restored, selection, database: o.database, notes: [...restored.notes, `${o.database} was not touched.`, ...earlier] };
  // A cancel that came after the last check of the copy: nothing is swapped, and the verified copy goes too.
  if (o.signal?.aborted) {
    const dropped = await dropDatabase(o.serverUrl, staging).then(
      () => `its verified copy ${staging} was dropped`,
      () => `its verified copy ${staging} could not be dropped: drop it once the server answers`,
    );
    throw new BotError('canceled', `The replacement of ${o.database} was canceled before its swap: ${o.database} was not touched; ${dropped}.`);
  }
  const keepAs = replacedName(o.database, o.now);
  o.progress({ phase: 'swapping' });
  // Never a reason not to swap: aroundSwap says its own failure in its notes.
  const around = o.aroundSwap ? await o.aroundSwap(keepAs).catch(() => null) : null;
  let swapped = false;
  try {
    await held();
    const swap = await swapDatabases(o.serverUrl, { name: o.database, staging, keepAs, owner: before.owner });
    const notes = [...swap.notes, ...(around?.notes ?? [])];
    swapped = true;
    return {
      ...restored,
      selection,
      database: o.database,
      keptAs: keepAs,
      // The moment the live name changed hands, said in the verdict (QA: it gave the restore's time alone).
      swappedAt: swap.at.toISOString(),
      swapMs: swap.refusedMs,
      notes: [
        `${o.database} now holds the backup, verified (${(restored.notes[0] ?? '').replace(staging, o.database)}); the database it replaced is kept as ${keepAs} until an admin drops it: whatever was written after the backup (taken ${formatTime(o.manifest.startedAt)}) is there, not in ${o.database}.`,
        ...notes,
        // What the restore said beyond its summary: materialized views refreshed, a damaged roles file it did not need.
        ...restored.notes.slice(1),
        ...earlier,
      ],
    };
  } catch (err) {
    return {
      ...restored,
      selection,
      database: o.database,
      passed: false,
      problems: [toUserMessage(err)],
      staging,
      notes: [
        `The verified copy is kept as ${staging} on ${serverLabel(o.serverUrl)} (\`restore drop ${staging}\` removes it, in Slack or the CLI).`,
        ...earlier,
      ],
    };
  } finally {
    await around?.release(swapped);
  }
}

/**
 * `/restore <id> --to=restore-server [--with-globals]`: the server to restore onto is RESTORE_SERVER_URL, and with
 * `--with-globals` the backup's roles are applied there first, so owners and grants come back too.
 */
export async function ontoRestoreServer(
  deps: { config: Config; storage: Storage },
  onto: { withGlobals: boolean },
  manifest: Manifest,
  log: Logger,
): Promise<{ serverUrl: string; owners: boolean; rolesNote?: string; rolesLeft?: string }> {
  const serverUrl = deps.config.restore.serverUrl;
  if (!serverUrl) throw new BotError('config_invalid', 'No restore server is configured (RESTORE_SERVER_URL); nothing was restored.');
  if (!onto.withGlobals) return { serverUrl, owners: false };
  const g = await restoreGlobalsOf({ manifest, storage: deps.storage, serverUrl, identityFile: deps.config.encryption.identityFile, log });
  log.info({ kept: g.kept, created: g.created }, 'roles applied on the restore server');
  const left = rolesLeft(serverUrl, g);
  return { serverUrl, owners: true, rolesNote: rolesLine(serverUrl, g), ...(left ? { rolesLeft: left } : {}) };
}

/**
 * A full restore after the backup's roles were applied to its server: the roles said in its verdict; one that
 * failed, or stopped on an error, says the roles it created there stay (they are the server's, not the dropped
 * database's).
 */
export async function afterRoles(
  run: Promise<SelectiveRestoreOutcome>,
  onto: { rolesNote?: string; rolesLeft?: string } | null,
): Promise<SelectiveRestoreOutcome> {
  const left = onto?.rolesLeft;
  const outcome = await run.catch((err: unknown) => {
    throw left ? new BotError(isBotError(err) ? err.code : 'internal', `${toUserMessage(err)} ${left}`, { cause: err }) : err;
  });
  const notes = [...(onto?.rolesNote ? [onto.rolesNote] : []), ...outcome.notes, ...(left && !outcome.passed ? [left] : [])];
  return { ...outcome, notes };
}
