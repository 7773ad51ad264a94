import { BotError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import { serverLabel } from '../connection.ts';
import { clientFailure, type FailureContext } from '../failures.ts';
import { safeProgress } from '../progress.ts';
import { type ArchiveReadOptions, UnreadableArchive } from './archive.ts';

/** What every step of one restore (a restore test, a selective restore) knows. */
export interface RestoreRun<Phase> {
  manifest: Manifest;
  startedAt: Date;
  now: () => Date;
  /** The database restored into: a restore test's scratch database, or a selective restore's target. */
  database: string;
  log: Logger;
  ctx: FailureContext;
  /** `detail`: how far the phase has come, in words ("12 of 40 tables, …"). */
  progress: (phase: Phase, detail?: string) => void;
}

export function startRun<Phase>(
  o: ArchiveReadOptions & {
    serverUrl: string;
    onProgress?: ((p: { phase: Phase; detail?: string }) => void) | undefined;
    missingRole?: FailureContext['missingRole'];
  },
  database: string,
  logFields: Record<string, unknown>,
  work: FailureContext['work'] = 'restore',
): RestoreRun<Phase> {
  const now = o.now ?? (() => new Date());
  const startedAt = now();
  const log = o.log.child({ backupId: o.manifest.backupId, ...logFields });
  const report = safeProgress(o.onProgress, log);
  const ctx: FailureContext = { tool: 'pg_restore', work, server: serverLabel(o.serverUrl), ...(o.missingRole ? { missingRole: o.missingRole } : {}) };
  return {
    manifest: o.manifest,
    startedAt,
    now,
    database,
    log,
    ctx,
    progress: (phase, detail) => report(detail === undefined ? { phase } : { phase, detail }),
  };
}

/**
 * One step of a restore, settled rather than thrown, so that the cleanup after the last step (the archive removed,
 * a database dropped) runs whatever happened. A stop carries either a problem (the archive shows the backup to be
 * bad: a verdict) or a failure (the restore itself could not run), which the caller throws once it has cleaned up.
 */
export type Step<T> = { ok: true; value: T } | { ok: false; problem: string | null; failure: unknown };

/** Runs `fn` as a step; `failure` decides what a thrown error becomes, at the moment it is thrown (a cancel, say). */
export async function step<T>(fn: () => Promise<T>, failure: (err: unknown) => unknown): Promise<Step<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    if (err instanceof UnreadableArchive) return { ok: false, problem: err.problem, failure: undefined };
    // `undefined` marks "no failure" to the callers: a step that threw nothing nameable must still fail the run,
    // never let it pass.
    const f = failure(err);
    return { ok: false, problem: null, failure: f === undefined ? new BotError('internal', 'A restore step stopped without saying why.') : f };
  }
}

/** A failure as it reaches the user: our own errors as they are, anything else (a driver's) mapped to a sentence. */
export function asBotError(failure: unknown, ctx: FailureContext): BotError {
  return failure instanceof BotError ? failure : clientFailure(failure, ctx);
}
