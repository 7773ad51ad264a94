import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { TargetName } from '../target-name.ts';
import { BotError } from '../errors.ts';
import { BackupIdSchema, RequestedBy } from './manifest.ts';

/**
 * The documented result of a restore test (did this backup restore, and how long did it take: the RTO) or of a
 * selective restore (who restored what, where). Kept beside the backups but outside every backup directory, so
 * retention deleting a backup never erases the evidence that it was tested.
 */

export const RecordKind = z.enum(['restore-test', 'restore']);
export type RecordKind = z.infer<typeof RecordKind>;

/** `20261125T001432123Z-3f9a1c`: sorts by start time; the random tail keeps two records of one millisecond apart. */
export const RecordIdSchema = z.string().regex(/^\d{8}T\d{9}Z-[0-9a-f]{6}$/, 'a record id looks like YYYYMMDDTHHMMSSmmmZ-xxxxxx');

export function newRecordId(at: Date = new Date()): string {
  const stamp = at.toISOString().replace(/[-:.]/g, ''); // 20261125T001432123Z
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export const RestoreRecordSchema = z.object({
  formatVersion: z.literal(1),
  kind: RecordKind,
  id: RecordIdSchema,
  target: TargetName,
  backupId: BackupIdSchema,
  startedAt: z.string().datetime(),
  finishedAt: z.string().datetime(),
  durationMs: z.number().int().nonnegative(),
  /** Getting the archive into a database: decompression plus pg_restore wall time. This is the measured RTO. */
  restoreMs: z.number().int().nonnegative(),
  /** Checksums, count comparison and smoke queries. */
  verifyMs: z.number().int().nonnegative(),
  /** pg_database_size of the restored database; null when nothing was restored. */
  restoredBytes: z.number().int().nonnegative().nullable(),
  /** The verdict of a restore test (final only once the scratch database is dropped); null for a restore. */
  passed: z.boolean().nullable(),
  checked: z.object({
    checksums: z.array(z.object({ file: z.string(), ok: z.boolean() })),
    /** Tables whose row counts were compared with the backup's. */
    tables: z.number().int().nonnegative(),
    /** Kinds of objects compared, e.g. `indexes`, `constraints (f)`. */
    objects: z.array(z.string()),
    smokeQueries: z.array(z.object({ name: z.string(), ok: z.boolean(), error: z.string().nullable() })),
    /** How deep the check went (the target's `verify`); absent in records made before levels existed: counts. */
    level: z.enum(['counts', 'content', 'full']).optional(),
    /** The copy compared with its archive entry by entry (content, definitions, large objects), or why not. */
    archive: z
      .object({
        compared: z.boolean(),
        why: z.string().optional(),
        tables: z.number().int().nonnegative().optional(),
        definitions: z.number().int().nonnegative().optional(),
        largeObjects: z.number().int().nonnegative().optional(),
        /** How many of each differed (each difference is also a problem, by name). */
        differing: z.object({ tables: z.number().int(), definitions: z.number().int(), largeObjects: z.number().int() }).optional(),
      })
      .optional(),
    /** pg_amcheck on the copy: the number of corrupt objects it reported, or why it did not run. */
    amcheck: z.object({ ran: z.boolean(), why: z.string().optional(), corrupt: z.number().int().optional(), heapallindexed: z.boolean() }).optional(),
  }),
  /** Sentences people read, one per problem; empty when all went well. */
  problems: z.array(z.string()),
  requestedBy: RequestedBy,
  jobId: z.string().nullable(),
  /** The scratch database of a restore test, or the database restored into. */
  database: z.string(),
  /**
   * Restore test: false only while the scratch database may still be on the server (its drop failed); true also
   * when none was created. Restore: whether the new database was dropped again after a failed restore, or later by
   * `restore drop`.
   */
  dropped: z.boolean(),
  selection: z
    .object({
      tables: z.array(z.string()),
      schemas: z.array(z.string()),
      /** The existing database restored into; null when a new one was created. */
      into: z.string().nullable(),
      created: z.boolean(),
    })
    .nullable(),
  /** What a restore left out on purpose or the reader must do next (the planner's and the full restore's notes). */
  notes: z.array(z.string()).optional(),
  /** Restored onto RESTORE_SERVER_URL (`--to=restore-server`), not the target's own server. */
  restoreServer: z.boolean().optional(),
  /** Restored by the CLI onto the server this environment variable names (`--to-url-env=NAME`): its URL, never stored. */
  serverUrlEnv: z.string().optional(),
  /** A replacement (`/restore <id> --into=<db>`, nothing selected): the name the replaced database is kept under. */
  keptAs: z.string().nullable().optional(),
  /** A replacement that swapped: when the restored copy took the live name (ISO), and how long the name refused connections before. */
  swappedAt: z.string().optional(),
  swapMs: z.number().int().nonnegative().optional(),
  /**
   * A replacement that did not finish: its staging database (`pgbb_swap_…`, a copy of the backup) left on the server,
   * the verified copy a failed swap kept or what a lost job had restored; `/restore list` shows it and `drop` removes it.
   */
  staging: z.string().nullable().optional(),
  /** What people did about a failure, added later by hand or by a command. */
  correctiveActions: z.string().nullable(),
  /** How pg_restore read the archive: a decompressed file with `-j` workers, or a single-job stream. */
  restoreMethod: z
    .object({ input: z.enum(['file', 'stream']), jobs: z.number().int().positive() })
    .nullable()
    .optional(),
});
export type RestoreRecord = z.infer<typeof RestoreRecordSchema>;

/** The record of a selective restore: the engine's outcome when it ran, else a failure record built from the request. */
export function restoreRecord(o: {
  outcome: (Omit<RestoreRecord, 'requestedBy' | 'jobId' | 'kind' | 'id'> & { restoredTables?: unknown }) | null;
  failure: string | null;
  target: string;
  backupId: string;
  startedAt: Date;
  finishedAt: Date;
  requestedBy: RestoreRecord['requestedBy'];
  jobId: string | null;
  selection: NonNullable<RestoreRecord['selection']>;
  database: string;
}): RestoreRecord {
  const base = { formatVersion: 1 as const, kind: 'restore' as const, id: newRecordId(o.startedAt), requestedBy: o.requestedBy, jobId: o.jobId };
  if (o.outcome) {
    const { restoredTables: _tables, ...fields } = o.outcome;
    return { ...fields, ...base, problems: [...fields.problems, ...(o.failure ? [o.failure] : [])] };
  }
  return {
    ...base,
    target: o.target,
    backupId: o.backupId,
    startedAt: o.startedAt.toISOString(),
    finishedAt: o.finishedAt.toISOString(),
    durationMs: o.finishedAt.getTime() - o.startedAt.getTime(),
    restoreMs: 0,
    verifyMs: 0,
    restoredBytes: null,
    passed: null,
    checked: { checksums: [], tables: 0, objects: [], smokeQueries: [] },
    problems: [o.failure ?? 'the restore did not run'],
    database: o.database,
    dropped: false,
    selection: o.selection,
    correctiveActions: null,
  };
}

/**
 * A restore test that could not run (no CREATEDB, the server gone, a worker lost): recorded as one, `passed: null`, so
 * health, `check`, /metrics and the checklists see its failure as the page did (QA: they said "no restore test
 * recorded" while a critical page was open). Never counted against the backup (failedRestoreTestIds: false only).
 */
export function notRunTestRecord(o: {
  target: string;
  backupId: string;
  at: Date;
  requestedBy: RestoreRecord['requestedBy'];
  jobId: string;
  reason: string;
}): RestoreRecord {
  const selection = { tables: [], schemas: [], into: null, created: false };
  const base = restoreRecord({ ...o, outcome: null, failure: `could not run: ${o.reason}`, startedAt: o.at, finishedAt: o.at, selection, database: '' });
  return { ...base, kind: 'restore-test', selection: null };
}

/** The part every record starts with: which backup, and when the work started, ended and how long it took. */
export function recordHead(m: { target: string; backupId: string }, startedAt: Date, finishedAt: Date) {
  return {
    formatVersion: 1 as const,
    target: m.target,
    backupId: m.backupId,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: Math.max(0, finishedAt.getTime() - startedAt.getTime()),
  };
}

/** A record as it is kept: checked against its schema first, so storage never holds one the bot cannot read back. */
export function validRecord(record: RestoreRecord): RestoreRecord {
  const parsed = RestoreRecordSchema.safeParse(record);
  if (parsed.success) return parsed.data;
  throw new BotError('internal', 'The restore record came out invalid, so it was not kept; this is a bug in the bot.', {
    detail: z.prettifyError(parsed.error),
  });
}
