import { asOption } from '../restore-scope.ts';
import { randomUUID } from 'node:crypto';
import { type Config, findTarget } from '../config.ts';
import { isBotError, toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { formatDuration } from '../format.ts';
import { swapSaid } from '../notifications/restore-messages.ts';
import { checkIdentityOpensBackup, identityFor, restoreGlobalsOf, rolesLeft, rolesLine, runSelectiveRestore } from '../postgres/restore/index.ts';
import { markedDamaged } from './marked-damaged.ts';
import { stagingName } from '../postgres/restore/swap.ts';
import { findRestorable, restoreRecord, type Storage } from '../storage/index.ts';
import { holdForReading } from './cli-hold.ts';
import { diskNeeded } from '../commands/replacement-warning.ts';
import { newRestoreDatabaseName } from '../commands/restore-command.ts';
import { otherDatabase, refuseServerDatabase } from '../commands/replace-guards.ts';
import { parseRestoreText, REPLACED_NAME, SEE_LIST } from '../commands/restore-text.ts';
import { dropRestoredDatabase, restoredDatabasesForCli } from '../restored-databases.ts';
import { isFullRestore, isReplacement, runFullRestore, runReplacement } from '../workers/full-restore.ts';
import { newServerArgs, type NewServer, onNewServer, RESTORE_CLI_USAGE, spacedName } from './new-server.ts';
import { type Begun, requestedBy, withId, writeUnfinished } from './restore-records.ts';

export { requestedBy };
import { serverLabel } from '../postgres/index.ts';
import { CANNOT_CONNECT } from '../postgres/failures.ts';
import type { CliIo } from './backup-cli.ts';
import { isWholeDatabase } from '../restore-scope.ts';
import { replacedWarning } from '../commands/drop-replaced.ts';
import { askFirst } from './restore-confirm.ts';

export interface CliDeps {
  config: Config;
  storage: Storage;
  log: Logger;
  io: CliIo;
  signal?: AbortSignal;
  /** The bot's Redis, when REDIS_URL is set: a replacement holds its backups off around the swap (cli/backup-lock.ts). */
  redisUrl?: string | null;
}

/** `pg-backup-bot restore …`: see RESTORE_CLI_USAGE. No selection: the whole database (into a new one, or replacing one). */
export async function cliRestore(args: string[], deps: CliDeps): Promise<number> {
  const { io } = deps;
  const yes = args.includes('--yes');
  let server: NewServer;
  try {
    server = newServerArgs(args.filter((a) => a !== '--yes'));
  } catch (err) {
    io.err(toUserMessage(err));
    return 2;
  }
  const spaced = spacedName(server.rest);
  const req = spaced ? { verb: 'help' as const, problem: spaced } : parseRestoreText(server.rest.join(' '), 'cli');
  if (req.verb === 'help') {
    io.err(`${req.problem ?? ''}\n${RESTORE_CLI_USAGE}`.trim());
    return 2;
  }
  if (server.url !== null && (req.verb !== 'restore' || req.into !== null || !isWholeDatabase(req))) {
    io.err(
      `${server.source === 'the --to-url URL' ? '--to-url' : '--to-url-env'} restores the whole database into a new database on that server (--into and --table are for the target's own server): give it a backup id alone.\n${RESTORE_CLI_USAGE}`,
    );
    return 2;
  }
  if (req.verb === 'list') {
    io.out(await restoredDatabasesForCli(deps, req.target));
    return 0;
  }
  if (req.verb === 'drop') {
    // A kept `…_replaced_…` database is the only copy of what was written after the backup (Slack: admins only).
    if (REPLACED_NAME.test(req.database) && !yes) {
      io.err(`${replacedWarning(req.database)} Add --yes to drop it.`);
      return 2;
    }
    try {
      io.out((await dropRestoredDatabase(deps, req.database)).replace(/`/g, ''));
      return 0;
    } catch (err) {
      io.err(toUserMessage(err).replace(/`/g, ''));
      return 1;
    }
  }
  if (req.into !== null && !yes) return askFirst(deps, req, req.into, server.withGlobals);
  // A restore that fails by an error (the server gone mid-way) is recorded too, as the worker records it: `restore
  // list` and `restore drop` then know the database it may have left.
  let begun: (Begun & { recordId?: string | undefined }) | null = null;
  const jobId = `cli:${randomUUID()}`;
  // Onto another server: the roles applied, in the summary too (stdout), not only among the progress lines.
  let rolesSaid: string | null = null;
  // Created for this restore: a failure after that says they stay (the summary of a success lists them).
  let left: string | null = null;
  // Held against retention while it reads (cli-hold.ts), as the CLI's restore test is.
  let hold: Awaited<ReturnType<typeof holdForReading>> = null;
  try {
    // Only a restore that applies the backup's roles reads its roles file: damage there alone stops no other.
    const manifest = await findRestorable(deps.storage, req.backupId, SEE_LIST.cli, server.withGlobals);
    hold = await holdForReading(deps, manifest.backupId, manifest.retainUntil, 'restore');
    // A missing or wrong key is said before anything is announced, created or recorded (QA: "Restoring …" first).
    await checkIdentityOpensBackup(manifest, deps.storage, await identityFor(manifest, deps.config.encryption.identityFile));
    if (req.into !== null && isWholeDatabase(req)) refuseServerDatabase(req.into, manifest);
    const other = req.into !== null && isWholeDatabase(req) ? otherDatabase(manifest, req.into) : '';
    if (other) io.err(`note: ${other.replace(/[*`]/g, '').trim()}`);
    const found = findTarget(deps.config, manifest.target);
    const target = server.url === null ? found : { ...found, url: server.url };
    if (server.withGlobals) {
      const g = await restoreGlobalsOf({
        manifest,
        storage: deps.storage,
        serverUrl: target.url,
        identityFile: deps.config.encryption.identityFile,
        log: deps.log,
      });
      rolesSaid = rolesLine(target.url, g);
      left = rolesLeft(target.url, g);
      io.err(rolesSaid);
      for (const n of g.notes) io.err(`  note  ${n}`);
    }
    const into = req.into === null ? { database: newRestoreDatabaseName(manifest.backupId), create: true } : { database: req.into, create: false };
    const startedAt = new Date();
    // A replacement restores into a staging database first (swap.ts stagingName): one that fails leaves it, said so.
    const replacing = isReplacement({ tables: req.tables, schemas: req.schemas, into });
    if (server.url === null) {
      begun = {
        manifest,
        target: target.name,
        into,
        startedAt,
        ...(replacing ? { staging: stagingName(jobId) } : {}),
      };
      // Recorded before it starts, and overwritten by its verdict: a CLI killed outright (SIGKILL) left a database
      // `restore list` did not show and `restore drop` refused as not a restore's (QA).
      begun.recordId = await writeUnfinished(deps, begun, req);
    }
    const full = isFullRestore({ tables: req.tables, schemas: req.schemas, into });
    if (full)
      io.err(
        `Restoring the whole database of ${manifest.backupId} into a new database ${into.database} on ${serverLabel(target.url)} …${diskNeeded(manifest).replace(/\*/g, '')}`,
      );
    const run = {
      manifest,
      storage: deps.storage,
      serverUrl: target.url,
      ...(deps.config.pgBinDir ? { pgBinDir: deps.config.pgBinDir } : {}),
      identityFile: deps.config.encryption.identityFile,
      ...(deps.signal ? { signal: deps.signal } : {}),
      log: deps.log,
    };
    const whole = {
      ...run,
      database: into.database,
      jobId,
      owners: server.withGlobals, // with the roles restored first, owners and grants come back too
      newServer: server.source ?? undefined,
      progress: (p: { phase: string; detail?: string }) =>
        io.err(`  ${p.phase}${p.detail ? ` — ${p.detail}` : ''} · ${formatDuration(Date.now() - startedAt.getTime())}`),
    };
    const outcome = full
      ? await runFullRestore(deps, whole)
      : replacing
        ? await runReplacement(deps, { ...whole, now: startedAt, aroundSwap: await aroundSwapOf(deps, into.database, jobId, target.url) })
        : await runSelectiveRestore({ ...run, tables: req.tables, schemas: req.schemas, into });
    await deps.storage.writeRecord(
      withId(begun?.recordId, {
        ...restoreRecord({
          outcome,
          failure: null,
          target: target.name,
          backupId: manifest.backupId,
          startedAt,
          finishedAt: new Date(),
          requestedBy: requestedBy(),
          jobId: null,
          selection: { tables: req.tables, schemas: req.schemas, into: req.into, created: into.create },
          database: into.database,
        }),
        ...(server.urlEnv ? { serverUrlEnv: server.urlEnv } : {}),
      }),
    );
    if (outcome.problems.length > 0) {
      const gone = server.url === null && outcome.problems.some((p) => p.startsWith(CANNOT_CONNECT)) ? serverGone(req.backupId) : '';
      const marked = await markedDamaged(deps, manifest, outcome.checked.checksums, 'pg-backup-bot restore');
      io.err(
        `Restore FAILED: ${onNewServer(server, outcome.problems.join('; '))}${gone}${[...outcome.notes, ...(left ? [left] : [])].map((n) => `\n${n}`).join('')}${marked}`,
      );
      return 1;
    }
    // Restored, yet a checksum failed (the roles file, which this restore does not read): marked all the same.
    const markedToo = await markedDamaged(deps, manifest, outcome.checked.checksums, 'pg-backup-bot restore');
    if (markedToo) io.err(markedToo.trim());
    io.out(
      [
        `Restored ${full || replacing ? 'the whole database ' : ''}into ${into.database} in ${formatDuration(outcome.restoreMs)}${'swappedAt' in outcome && outcome.swappedAt ? `; ${swapSaid(into.database, { at: outcome.swappedAt, ms: outcome.swapMs ?? 0 })}` : ''}:`,
        ...outcome.restoredTables.map((t) => `  ${asOption(t.schema)}.${asOption(t.table)}  ${t.rows} rows`),
        ...outcome.notes.map((n) => `  note  ${n}`),
        ...(rolesSaid ? [`  roles  ${rolesSaid}`] : []),
        // On the server that replaces a lost one, the applications want the database under its own name.
        ...(server.url !== null && full
          ? [
              `  name   to give it the source's name: ALTER DATABASE "${into.database}" RENAME TO "${manifest.database.name.replace(/"/g, '""')}" (with nobody connected to it; ${manifest.database.name} must not exist there)`,
            ]
          : []),
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    const gone = isBotError(err) && err.code === 'pg_unreachable' && server.url === null ? serverGone(req.backupId) : '';
    io.err(`Restore FAILED: ${onNewServer(server, toUserMessage(err))}${gone}${left ? `\n${left}` : ''}`);
    if (begun) {
      const { manifest, target, into, startedAt } = begun;
      const selection = { tables: req.tables, schemas: req.schemas, into: req.into, created: into.create };
      const failed = { outcome: null, failure: toUserMessage(err), target, backupId: manifest.backupId, startedAt, finishedAt: new Date() };
      // The staging copy is named even when its drop failed or was never tried: `restore list` checks it on the server.
      const record = restoreRecord({ ...failed, requestedBy: requestedBy(), jobId: null, selection, database: into.database });
      await deps.storage
        .writeRecord(
          withId(begun.recordId, {
            ...record,
            ...(begun.staging ? { staging: begun.staging } : {}),
          }),
        )
        .catch((e: unknown) => deps.log.error({ err: e }, 'could not write the restore record'));
    }
    return 1;
  } finally {
    await hold?.release();
  }
}

/** The target's server gone is the disaster this command is for: how to restore onto another one. */
const serverGone = (backupId: string) =>
  ` If that server is gone: pg-backup-bot restore ${backupId} --to-url-env=NAME --with-globals restores onto another one (README "Disaster recovery").`;

/** Slack's replacement warning as plain text, with how to confirm (or that there is nothing to replace); null: no server. */
/** With the bot's Redis, a replacement holds its backups off around the swap (ioredis loaded only then). */
const aroundSwapOf = async (deps: CliDeps, database: string, jobId: string, url: string) =>
  deps.redisUrl ? (await import('./backup-lock.ts')).cliAroundSwap(deps.config, deps.redisUrl, database, jobId, url) : undefined;
