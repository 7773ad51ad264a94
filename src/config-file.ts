import { existsSync, readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isNode, isScalar, type Document } from 'yaml';
import { z } from 'zod';
import { SCHEDULE_SECTION_SHAPE } from './schedules/index.ts';

/**
 * The optional YAML file (BOT_CONFIG, default ./pg-backup-bot.yml when present). Unknown keys are errors, so a
 * typo cannot silently switch a check off; every error names the file, the line and the key.
 */
const SlackPrincipal = z.string().regex(/^[UWS][A-Z0-9]{2,}$/, 'a Slack user ID (U…/W…) or user group ID (S…)');

export const FileConfigSchema = z
  .object({
    /** timezone, targets, retention, reminders: see schedules/config-schema.ts. */
    ...SCHEDULE_SECTION_SHAPE,
    /**
     * A worker that starts while a target has no finished backup (and none queued or running) takes one at once,
     * instead of leaving a new install unprotected until the first scheduled run. FIRST_BACKUP_AT_START overrides it.
     */
    firstBackupAtStart: z.boolean().default(true),
    /** `none` is the explicit opt-out that lets a production target take unencrypted backups. */
    encryption: z.enum(['age', 'none']).optional(),
    /**
     * Who may do what. viewer: list/status/health/history; operator: backup, restore-test, restore into a new
     * database; admin: restore into an existing database, audit. Without this section everyone is an operator.
     */
    roles: z
      .object({
        viewer: z.array(SlackPrincipal).default([]),
        operator: z.array(SlackPrincipal).default([]),
        admin: z.array(SlackPrincipal).default([]),
      })
      .strict()
      .optional(),
    restoreTest: z
      .object({
        /** Queries that must succeed on every restored copy (the seed's "test a few critical queries"). */
        smokeQueries: z.array(z.object({ name: z.string().min(1).max(80), sql: z.string().min(1) }).strict()).default([]),
        /** pg_restore -j for restore tests. */
        jobs: z.number().int().min(1).max(16).default(2),
        /** How deeply every target's restore tests check the copy, unless the target says otherwise. */
        verify: z.enum(['counts', 'content', 'full']).default('content'),
      })
      .strict()
      .default({ smokeQueries: [], jobs: 2, verify: 'content' }),
    health: z
      .object({
        /** How often the health job checks every target. */
        intervalMinutes: z
          .number()
          .int()
          .min(1)
          .max(24 * 60)
          .default(15),
        staleHours: z.number().positive().optional(),
        staleHoursByClass: z.record(z.enum(['manual', 'daily', 'frequent', 'weekly', 'pre-migration']), z.number().positive()).optional(),
        sizeLowRatio: z.number().positive().max(1).optional(),
        sizeHighRatio: z.number().min(1).optional(),
        sizeWindow: z.number().int().min(3).max(100).optional(),
        minBytes: z.number().int().nonnegative().optional(),
        slowMinutes: z.number().positive().optional(),
        diskFreeMinPercent: z.number().min(0).max(100).optional(),
      })
      .strict()
      .default({ intervalMinutes: 15 }),
    /** Data drift between consecutive backups (drift/, health/drift-condition.ts). */
    drift: z
      .object({
        /** A table that lost more than this percentage of its rows… */
        lossPercent: z.number().min(0).max(100).default(50),
        /** …and at least this many is in drift; a table must also grow by this many rows to be named. */
        minRows: z.number().int().nonnegative().default(1000),
        /** A table that grew more than this factor is named in the size-anomaly evidence. */
        growthFactor: z.number().min(1).default(10),
        /** true: data drift pages (severity error); by default it is a warning posted in the channel. */
        page: z.boolean().default(false),
      })
      .strict()
      .default({ lossPercent: 50, minRows: 1000, growthFactor: 10, page: false }),
    restore: z
      .object({
        /** Slack user IDs allowed to restore into an existing database (after a confirmation). */
        allowedUsers: z.array(z.string().regex(/^[UW][A-Z0-9]{2,}$/, 'a Slack user ID like U012ABCDEF')).default([]),
        /** Databases restores made (and those replacements kept) are dropped this many days after; none by default. */
        expireAfterDays: z.number().int().positive().optional(),
      })
      .strict()
      .default({ allowedUsers: [] }),
  })
  .strict();
export type FileConfig = z.infer<typeof FileConfigSchema>;

export const EMPTY_FILE_CONFIG: FileConfig = FileConfigSchema.parse({});

/** Reads and validates the file; returns problems as `file line N, key.path: message` sentences. */
export function readFileConfig(path: string | undefined): { config: FileConfig; problems: string[]; path: string | null } {
  const chosen = path ?? (existsSync('./pg-backup-bot.yml') ? './pg-backup-bot.yml' : undefined);
  if (!chosen) return { config: EMPTY_FILE_CONFIG, problems: [], path: null };
  let text: string;
  try {
    text = readFileSync(chosen, 'utf8');
  } catch (err) {
    return { config: EMPTY_FILE_CONFIG, problems: [`BOT_CONFIG: cannot read ${chosen} (${(err as NodeJS.ErrnoException).code ?? 'error'})`], path: chosen };
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length > 0) {
    return {
      config: EMPTY_FILE_CONFIG,
      problems: doc.errors.map((e) => `${chosen} line ${lines.linePos(e.pos[0]).line}: ${e.message.split('\n')[0]}`),
      path: chosen,
    };
  }
  const parsed = FileConfigSchema.safeParse(doc.toJS() ?? {});
  if (parsed.success) return { config: parsed.data, problems: [], path: chosen };
  const found = parsed.error.issues.flatMap((issue): Array<{ line: number | null; what: string }> => {
    const keyPath = issue.path.map(String);
    // A misspelt key is its own line: `retention.dryrun`, where it is typed, not the mapping it sits in.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        line: keyLine(doc, lines, keyPath, key) ?? nodeLine(doc, lines, keyPath),
        what: `${[...keyPath, key].join('.')}: unknown key`,
      }));
    }
    return [{ line: nodeLine(doc, lines, keyPath), what: `${keyPath.join('.') || '(top level)'}: ${issue.message}` }];
  });
  // In file order: whoever fixes them goes down the file once.
  const problems = found
    .sort((a, b) => (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER))
    .map((p) => `${chosen}${p.line !== null ? ` line ${p.line}` : ''}, ${p.what}`);
  return { config: EMPTY_FILE_CONFIG, problems, path: chosen };
}

const yamlPath = (keyPath: readonly string[]) => keyPath.map((k) => (/^\d+$/.test(k) ? Number(k) : k));

/** The line of the deepest node of `keyPath` that exists: the value itself, or the mapping that lacks it. */
function nodeLine(doc: Document, lines: LineCounter, keyPath: readonly string[]): number | null {
  for (let n = keyPath.length; n >= 0; n--) {
    const node = doc.getIn(yamlPath(keyPath.slice(0, n)), true);
    if (isNode(node) && node.range) return lines.linePos(node.range[0]).line;
  }
  return null;
}

/** The line where `key` is written in the mapping at `keyPath`. */
function keyLine(doc: Document, lines: LineCounter, keyPath: readonly string[], key: string): number | null {
  const map = doc.getIn(yamlPath(keyPath), true);
  if (!isMap(map)) return null;
  const pair = map.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
  return pair && isNode(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : null;
}
