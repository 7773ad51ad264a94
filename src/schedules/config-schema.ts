import { z } from 'zod';
import { TargetName } from '../target-name.ts';
import { cronProblem } from './cron.ts';
import { DEFAULT_POLICY, type EnvironmentPolicy } from './policy.ts';
import { canonicalTimeZone } from './time.ts';

/**
 * The schedules part of the YAML file: targets, their environment, the time zone and overrides of the default
 * policy (policy.ts). Spread `SCHEDULE_SECTION_SHAPE` into the file schema's object so its keys stay top-level
 * and unknown keys stay errors; every refinement lives on a field, so it survives the spread.
 *
 * ```yaml
 * timezone: Europe/Paris
 * targets:
 *   - name: shop
 *     urlEnv: SHOP_DATABASE_URL        # or url: postgres://…  (exactly one)
 *     environment: production
 *     excludeTables: [public.audit_log_*]
 *     schemas: [public, shop]
 *     verify: full                     # restore tests: counts | content | full (default: restoreTest.verify)
 *     pitr: { urlEnv: SHOP_REPLICATION_URL, walRetentionDays: 7, rpoSeconds: 3600 }   # a continuous WAL archive
 *     # pitr.baseBackup: { cron: '0 1 * * 0', maxAgeHours: 192, afterBreak: true }   # weekly (default), or { enabled: false }
 *     schedules:
 *       backups:
 *         daily: { cron: '30 1 * * *' }     # change a default: only the fields given
 *         frequent: { enabled: false }      # remove a default
 *         hourly: { cron: '15 * * * *', retentionClass: frequent, keepDays: 2 }   # add one: all three fields
 *       restoreTest: { cadence: quarterly, at: '04:00' }   # or { enabled: false }
 *       preMigration: { keepDays: 180 }
 * ```
 */

// Messages never echo the value: a `url` may carry a password.
export const TimeZone = z
  .string()
  .refine((tz) => canonicalTimeZone(tz) !== null, 'an IANA time zone such as Europe/Paris or UTC')
  // One spelling per zone (`utc` → `UTC`), so scheduler templates do not change when someone retypes it.
  .transform((tz) => canonicalTimeZone(tz) ?? tz);

export const ScheduleId = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'a schedule id is 1–32 characters: lowercase letters, digits and -');
export const TimeOfDay = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day as HH:MM, 24-hour');
export const CronPattern = z.string().superRefine((value, ctx) => {
  const problem = cronProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const KeepDays = z.number().int().min(1).max(3650);
// pg_dump patterns reach argv as one `--exclude-table=…` word; a safe alphabet keeps them from becoming options.
const TablePattern = z.string().regex(/^[A-Za-z_*?][A-Za-z0-9_$*?.]{0,127}$/, 'a table name or pg_dump pattern: letters, digits, _ $ . * ?');
const SchemaPattern = z.string().regex(/^[A-Za-z_*?][A-Za-z0-9_$*?]{0,62}$/, 'a schema name or pg_dump pattern: letters, digits, _ $ * ?');

const BackupOverride = z
  .object({
    enabled: z.boolean().optional(),
    cron: CronPattern.optional(),
    retentionClass: z.enum(['daily', 'frequent', 'weekly']).optional(),
    keepDays: KeepDays.optional(),
  })
  .strict();

const ScheduleOverrides = z
  .object({
    backups: z.record(ScheduleId, BackupOverride).optional(),
    restoreTest: z
      .object({ enabled: z.boolean().optional(), cadence: z.enum(['monthly', 'quarterly']).optional(), at: TimeOfDay.optional() })
      .strict()
      .optional(),
    preMigration: z.object({ keepDays: KeepDays }).strict().optional(),
  })
  .strict();

/**
 * Cross-field checks run even when a field of the same object is wrong (zod skips them by default): every mistake
 * in the file is listed at once, instead of one more appearing after each fix.
 */
const ALWAYS = { when: (payload: { value: unknown }) => typeof payload.value === 'object' && payload.value !== null };

function isPostgresUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'postgres:' || url.protocol === 'postgresql:';
  } catch {
    return false;
  }
}

export const ScheduleTargetSchema = z
  .object({
    name: TargetName,
    url: z.string().refine(isPostgresUrl, 'a postgres:// or postgresql:// URL').optional(),
    urlEnv: z
      .string()
      .regex(/^[A-Z_][A-Z0-9_]*$/, 'the name of an environment variable, e.g. SHOP_DATABASE_URL')
      .optional(),
    // Missing said as missing (QA: a misspelt `enviroment:` read as an invalid value here, beside "unknown key").
    environment: z.enum(['production', 'staging'], {
      error: (issue) => (issue.input === undefined ? 'missing: production or staging' : 'production or staging'),
    }),
    excludeTables: z.array(TablePattern).default([]),
    /** Empty: every schema. */
    schemas: z.array(SchemaPattern).default([]),
    /**
     * Point-in-time recovery: a continuous WAL archive streamed over a replication connection (a role with
     * REPLICATION), through a physical slot of its own.
     */
    pitr: z
      .object({
        urlEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'the name of an environment variable, e.g. SHOP_REPLICATION_URL'),
        slot: z
          .string()
          .regex(/^[a-z0-9_]{1,63}$/, 'a replication slot name: lowercase letters, digits and _, at most 63')
          .optional(),
        walRetentionDays: z.number().int().min(1).max(366).default(7),
        rpoSeconds: z.number().int().min(10).max(86_400).default(3600),
        /** Exact-point markers for PITR restore tests: a row in pgbb_pitr.markers every everySeconds; false turns them off. */
        markers: z.union([z.literal(false), z.object({ everySeconds: z.number().int().min(5).max(3600).default(60) }).strict()]).default({ everySeconds: 60 }),
        /** WAL the slot may hold on the server before `wal-slot` fails (bytes; default 8 GiB, health/wal-types.ts). */
        slotMaxBytes: z
          .number()
          .int()
          .min(16 * 1024 * 1024, 'at least one WAL segment (16777216 bytes)')
          .optional(),
        /** Base backups on a schedule (weekly by default), and how old the newest may get before health fails. */
        baseBackup: z
          .object({
            enabled: z.boolean().default(true),
            cron: CronPattern.default('0 1 * * 0'),
            maxAgeHours: z
              .number()
              .int()
              .min(1)
              .max(24 * 366)
              .default(192),
            /**
             * A base backup as soon as a health check finds the window broken (a gap, or a timeline no base backup
             * was taken on): recovery cannot cross either, and a new base backup is what opens the window again.
             */
            afterBreak: z.boolean().default(true),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .optional(),
    /** How deeply restore tests check a restored copy: counts, content or full; default: restoreTest.verify. */
    verify: z.enum(['counts', 'content', 'full']).optional(),
    schedules: ScheduleOverrides.optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.url === undefined) === (t.urlEnv === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'give exactly one of url and urlEnv' });
    }
    // Also run when another field is wrong (see ALWAYS): then any field may be missing or of the wrong type.
    const policy = DEFAULT_POLICY[t.environment] as EnvironmentPolicy | undefined;
    if (!policy) return;
    const defaults = new Set(policy.backups.map((b) => b.id));
    for (const [id, o] of Object.entries(t.schedules?.backups ?? {})) {
      if (typeof o !== 'object' || o === null) continue;
      if (defaults.has(id) || o.enabled === false) continue;
      const missing = (['cron', 'retentionClass', 'keepDays'] as const).filter((k) => o[k] === undefined);
      if (missing.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['schedules', 'backups', id],
          message: `"${id}" is not a default ${t.environment} schedule (${[...defaults].join(', ')}), so it adds one and needs ${missing.join(', ')}`,
        });
      }
    }
  }, ALWAYS);
export type ScheduleTarget = z.infer<typeof ScheduleTargetSchema>;

const Targets = z.array(ScheduleTargetSchema).superRefine((targets, ctx) => {
  const seen = new Set<string>();
  targets.forEach((t, i) => {
    if (typeof t?.name !== 'string') return;
    if (seen.has(t.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `target ${t.name} is listed twice` });
    seen.add(t.name);
  });
}, ALWAYS);

const Weekday = z.enum(['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday']);

export const SCHEDULE_SECTION_SHAPE = {
  /** Every schedule, reminder and `/backup status` time is in this zone. */
  timezone: TimeZone.default('UTC'),
  targets: Targets.default([]),
  retention: z
    .object({
      enabled: z.boolean().default(true),
      /** After the nightly backups, before the morning checklist that reports on it. */
      at: TimeOfDay.default('05:00'),
      /** Report what would be deleted, delete nothing. */
      dryRun: z.boolean().default(false),
    })
    .strict()
    .prefault({}),
  reminders: z
    .object({
      daily: z
        .object({ enabled: z.boolean().default(true), at: TimeOfDay.default('09:00') })
        .strict()
        .prefault({}),
      weekly: z
        .object({ enabled: z.boolean().default(true), day: Weekday.default('monday'), at: TimeOfDay.default('09:00') })
        .strict()
        .prefault({}),
      /** Second Monday: always after the first Saturday's restore test, which it asks about. */
      monthly: z
        .object({ enabled: z.boolean().default(true), at: TimeOfDay.default('09:00') })
        .strict()
        .prefault({}),
    })
    .strict()
    .prefault({}),
};

export const ScheduleConfigSchema = z.object(SCHEDULE_SECTION_SHAPE).strict();
export type ScheduleConfig = z.infer<typeof ScheduleConfigSchema>;
export type WeekdayName = z.infer<typeof Weekday>;
