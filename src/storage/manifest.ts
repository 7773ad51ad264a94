import { z } from 'zod';
import { BotError } from '../errors.ts';
import { TargetName } from '../target-name.ts';
import { DefinitionsSchema } from './manifest-definitions.ts';

/**
 * manifest.json: the source of truth for one backup, written last. A backup directory without it is an
 * unfinished backup: never listed, cleaned up. Everything a restore or a restore test needs is here.
 */

export const BackupIdSchema = z.string().regex(/^[a-z][a-z0-9_-]{0,47}-\d{8}T\d{6}Z(-\d+)?$/, 'a backup id looks like <target>-YYYYMMDDTHHMMSSZ');

export const BackupKind = z.enum(['manual', 'scheduled', 'pre-migration']);
export type BackupKind = z.infer<typeof BackupKind>;

export const RetentionClass = z.enum(['manual', 'daily', 'frequent', 'weekly', 'pre-migration']);
export type RetentionClass = z.infer<typeof RetentionClass>;

export const ArtifactSchema = z.object({
  /** File name inside the backup directory, e.g. `database.pgdump.zst`. */
  file: z.string().regex(/^[a-zA-Z0-9._-]+$/),
  role: z.enum(['database', 'globals']),
  /** pg_dump format: `custom` for the database, `plain` SQL for pg_dumpall globals. */
  format: z.enum(['custom', 'plain']),
  compression: z.enum(['zstd', 'none']),
  compressionLevel: z.number().int().nullable(),
  encryption: z.object({ scheme: z.literal('age'), recipients: z.array(z.string()) }).nullable(),
  /** Bytes and sha256 of the file as stored (after compression and encryption). */
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Bytes the pg tool wrote before compression. */
  rawBytes: z.number().int().nonnegative(),
});
export type Artifact = z.infer<typeof ArtifactSchema>;

export const TableCountSchema = z.object({ schema: z.string(), table: z.string(), rows: z.number().int().nonnegative() });
export type TableCount = z.infer<typeof TableCountSchema>;

export const ObjectCountsSchema = z.object({
  schemas: z.number().int(),
  tables: z.number().int(),
  partitionedTables: z.number().int(),
  constraints: z.object({ p: z.number().int(), f: z.number().int(), u: z.number().int(), c: z.number().int(), x: z.number().int() }),
  indexes: z.number().int(),
  functions: z.number().int(),
  aggregates: z.number().int(),
  triggers: z.number().int(),
  sequences: z.number().int(),
  views: z.number().int(),
  materializedViews: z.number().int(),
  domains: z.number().int(),
  types: z.number().int(),
  extensions: z.number().int(),
  // Counted since 2026-12-07 (QA: a `counts` restore test passed a copy without its policies or large objects).
  policies: z.number().int().optional(),
  rowSecurityTables: z.number().int().optional(),
  largeObjects: z.number().int().optional(),
});
export type ObjectCounts = z.infer<typeof ObjectCountsSchema>;

/** Who asked for a backup, test or restore; kept in job data, manifests and records alike. */
export const RequestedBy = z.object({
  source: z.enum(['slack', 'cli', 'schedule']),
  userId: z.string().optional(),
  userName: z.string().optional(),
});

export const ManifestSchema = z.object({
  formatVersion: z.literal(1),
  backupId: BackupIdSchema,
  target: TargetName,
  kind: BackupKind,
  retentionClass: RetentionClass,
  /** ISO time after which retention may delete this backup; null keeps it until someone deletes it. */
  retainUntil: z.string().datetime().nullable(),
  requestedBy: RequestedBy,
  jobId: z.string().nullable(),
  label: z.string().nullable(),
  startedAt: z.string().datetime(),
  finishedAt: z.string().datetime(),
  durationMs: z.number().int().nonnegative(),
  database: z.object({
    name: z.string(),
    serverVersion: z.string(),
    serverVersionNum: z.number().int(),
    pgDumpVersion: z.string(),
    /**
     * The TimeZone pg_dump's session had (PGTZ), which decides how timestamptz values are written: a restore test
     * reads the copy back in the same one to compare contents. Absent in backups made before it was set.
     */
    dumpTimeZone: z.string().optional(),
    sizeBytes: z.number().int().nonnegative(),
  }),
  /** The snapshot pg_dump ran in (`pg_dump --snapshot`), so the counts below describe exactly what was dumped. */
  snapshotId: z.string(),
  artifacts: z.array(ArtifactSchema).min(1),
  globals: z.object({
    included: z.boolean(),
    rolePasswords: z.boolean(),
    /** Why globals or role passwords were left out (e.g. "the backup role is not a superuser"). */
    note: z.string().nullable(),
  }),
  verification: z.object({
    tables: z.array(TableCountSchema),
    objects: ObjectCountsSchema,
  }),
  /**
   * Set when the target narrows what pg_dump takes (`--schema`, `--exclude-table` patterns); absent: the whole
   * database. The counts above cover only this scope, and a restore test recounts the restored copy within it.
   */
  scope: z.object({ schemas: z.array(z.string()), excludeTables: z.array(z.string()) }).optional(),
  /** Definitions by name, read in the dump's snapshot within the same scope (drift between backups); absent in older ones. */
  definitions: DefinitionsSchema.optional(),
  tool: z.object({ name: z.literal('pg-backup-bot'), version: z.string() }),
});
export type Manifest = z.infer<typeof ManifestSchema>;

/** `<target>-<YYYYMMDD>T<HHMMSS>Z`: sorts by time within a target. */
export function makeBackupId(target: string, at: Date): string {
  const iso = at.toISOString(); // 2026-11-24T23:24:11.123Z
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return `${target}-${stamp}`;
}

export function totalBytes(m: Manifest): number {
  return m.artifacts.reduce((sum, a) => sum + a.bytes, 0);
}

export function totalRows(m: Manifest): number {
  return m.verification.tables.reduce((sum, t) => sum + t.rows, 0);
}

/** Every storage checks a manifest before writing it: an invalid one means the backup is not kept. */
export function validManifest(manifest: Manifest): Manifest {
  const parsed = ManifestSchema.safeParse(manifest);
  if (!parsed.success) {
    throw new BotError('internal', 'The backup’s manifest came out invalid, so the backup was not kept; this is a bug in the bot.', {
      detail: z.prettifyError(parsed.error),
    });
  }
  return parsed.data;
}

/** A stored manifest's text → the manifest of exactly that backup; anything else is an unusable backup. */
const zodWhy = (err: z.ZodError) => err.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`).join('; ');

/** A manifest that does not parse: the backup cannot be used, though its files may be there (catalog.ts names another). */
export class UnreadableManifest extends BotError {}

export function parseManifest(text: string, target: string, backupId: string): Manifest {
  try {
    const m = ManifestSchema.parse(JSON.parse(text));
    if (m.backupId !== backupId || m.target !== target) throw new Error(`manifest names ${m.target}/${m.backupId}`);
    return m;
  } catch (err) {
    // Why, in a few words (a JSON syntax error, a missing field): the first thing a person looking at it needs.
    const why = err instanceof SyntaxError ? err.message : err instanceof z.ZodError ? zodWhy(err) : (err as Error).message;
    throw new UnreadableManifest('storage_failed', `The manifest of backup ${backupId} is unreadable (${why.slice(0, 160)}), so that backup cannot be used.`, {
      cause: err,
    });
  }
}
