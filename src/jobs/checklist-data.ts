import { z } from 'zod';
import { ChecklistJobData } from '../schedules/index.ts';
import { BackupIdSchema, RequestedBy } from '../storage/index.ts';
import { TargetName } from '../target-name.ts';

/**
 * Job data of the checklist queue: the scheduled reminders (daily, weekly, monthly: verified when they run) and
 * the pre-migration checklist, whose bot items are the results of the backup and the restore test that came
 * before it (carried here, since both jobs are finished by then). Names, ids and figures only: Redis is clear text.
 */

/** A pre-migration label: one word of a safe alphabet, shown in messages and kept in the manifest. */
export const MigrationLabel = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/, 'a label is 1–80 characters: letters, digits, . _ - (starting with a letter or digit)');

export const PreMigrationBackupResult = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    backupId: BackupIdSchema,
    jobId: z.string(),
    bytes: z.number().int().nonnegative(),
    durationMs: z.number().int().nonnegative(),
    retainUntil: z.string().datetime().nullable(),
  }),
  z.object({ ok: z.literal(false), jobId: z.string(), reason: z.string().max(500) }),
]);
export type PreMigrationBackupResult = z.infer<typeof PreMigrationBackupResult>;

export const PreMigrationRestoreResult = z.object({
  /** null: the test could not run at all (scratch server unreachable, no key…); `problems[0]` says why. */
  passed: z.boolean().nullable(),
  jobId: z.string(),
  /** The measured restore time (RTO) and the whole test's wall time. */
  restoreMs: z.number().int().nonnegative().nullable(),
  durationMs: z.number().int().nonnegative().nullable(),
  tables: z.number().int().nonnegative().nullable(),
  /** What the test compared, as its verdict says it ("4 tables: content identical; …"); absent in older jobs. */
  checked: z.string().max(1000).optional(),
  problems: z.array(z.string().max(500)).max(5),
});
export type PreMigrationRestoreResult = z.infer<typeof PreMigrationRestoreResult>;

/** The channel message a job updates in place; set on first run so a retry never posts twice. */
export const Anchor = z.object({ channel: z.string(), ts: z.string() });

/** What a pre-migration backup hands to the restore test it starts, and both to the checklist. */
export const PreMigrationContext = z.object({
  label: MigrationLabel,
  requestedBy: RequestedBy,
  backup: PreMigrationBackupResult,
});
export type PreMigrationContext = z.infer<typeof PreMigrationContext>;

export const PreMigrationChecklistData = PreMigrationContext.extend({
  kind: z.literal('pre-migration'),
  target: TargetName,
  /** null when the backup failed and no restore test was run. */
  restoreTest: PreMigrationRestoreResult.nullable(),
  anchor: Anchor.optional(),
});
export type PreMigrationChecklistData = z.infer<typeof PreMigrationChecklistData>;

/** The scheduled reminders' template plus the message they posted (set on first run: a retry never posts twice). */
export const ScheduledChecklistJob = ChecklistJobData.extend({ anchor: Anchor.optional() });

export const ChecklistJob = z.union([ScheduledChecklistJob, PreMigrationChecklistData]);
export type ChecklistJob = z.infer<typeof ChecklistJob>;
