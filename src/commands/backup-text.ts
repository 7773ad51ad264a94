import { z } from 'zod';
import { TargetName } from '../target-name.ts';
import { MigrationLabel } from '../jobs/checklist-data.ts';
import { BackupIdSchema } from '../storage/index.ts';
import { didYouMean, straightened, unwrapWord } from './typed-ids.ts';

/** What `/backup …` can ask for, after parsing. Anything else becomes `help` with the problem named. */
export type BackupRequest =
  | { verb: 'now'; target?: string; physical?: true }
  | { verb: 'pre-migration'; label: string; target?: string }
  | { verb: 'list'; target?: string }
  | { verb: 'status' }
  | { verb: 'health'; target?: string }
  | { verb: 'audit'; count: number }
  | { verb: 'checklist'; kind: ChecklistReminderKind }
  | { verb: 'diff'; a: string; b: string }
  | { verb: 'help'; problem?: string };

/** The checklists a schedule posts; `/backup checklist <kind>` posts one now. */
export const CHECKLIST_REMINDER_KINDS = ['daily', 'weekly', 'monthly'] as const;
export type ChecklistReminderKind = (typeof CHECKLIST_REMINDER_KINDS)[number];

const Word = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);

export const BACKUP_USAGE = [
  '*Usage:* `/backup <command>`',
  '• `/backup now [target]` — take a backup now (custom-format pg_dump, zstd, sha256, verified readable)',
  '• `/backup now --physical [target]` — a base backup for point-in-time recovery now (pg_basebackup; targets with a `pitr` section)',
  '• `/backup pre-migration <label> [target]` — a backup kept for the pre-migration period, restore-tested, then the pre-migration checklist (label: letters, digits, . _ -, e.g. `JIRA-1234`)',
  '• `/backup list [target]` — the most recent backups, newest first',
  '• `/backup status` — running, waiting and failed backup jobs, and every schedule with its next run',
  '• `/backup health [target]` — every health condition with its evidence and since when',
  '• `/backup diff <backup-id> <backup-id>` — what changed between two backups of a target: tables, columns, indexes, constraints, functions, policies; tables that lost or gained rows',
  "• `/backup checklist daily|weekly|monthly` — run the bot's checks now and post that checklist (as its reminder does)",
  '• `/backup audit [n]` — the last n entries of the audit trail (admins)',
  '• `/backup help` — this text',
  '*Who may* (the `roles` section of BOT_CONFIG; without it everyone is an operator; users in `restore.allowedUsers` or RESTORE_ALLOWED_USERS are admins unless `roles` names them otherwise): viewers list, see status, health, diffs, restore-test history and restored databases; operators also back up, run checklists and tick their boxes, acknowledge a data drift, run restore tests, restore into a new database and drop one a restore made; admins also replace or overwrite a database, restore with `--with-globals`, drop a kept `…_replaced_…` database and read the audit trail.',
  'Also: `/restore-test latest [target]` proves a backup restores, `/restore-test pitr [target]` a point-in-time recovery; `/restore <backup-id>` restores a whole database, a replacement (`--into=`), onto a new server (`--to=restore-server`) or tables (`--table=…`). `/restore-test` and `/restore` alone list their commands. On a worker host, `pg-backup-bot scrub --all` reads every stored backup back against its checksums.',
].join('\n');

/**
 * Parses the free text after `/backup`. User text never reaches a shell or a command line: only words of a safe
 * alphabet pass, and target names must also be valid target names.
 */
export function parseBackupText(raw: string): BackupRequest {
  const words = straightened(raw).trim().split(/\s+/).filter(Boolean).map(unwrapWord);
  if (words.length === 0) return { verb: 'help' };
  if (words[0]?.toLowerCase() === 'pre-migration') return parsePreMigration(words.slice(1));
  if (words[0]?.toLowerCase() === 'now' && words.some((w) => w.toLowerCase() === '--physical')) return parsePhysical(words.slice(1));
  if (words[0]?.toLowerCase() === 'diff') return parseDiff(words.slice(1));
  const bad = words.find((w) => !Word.safeParse(w).success);
  if (bad !== undefined) return { verb: 'help', problem: `"${truncate(bad)}" is not something /backup understands.` };
  const [verb, arg, ...rest] = words.map((w) => w.toLowerCase()) as [string, string | undefined, ...string[]];
  if (rest.length > 0) return { verb: 'help', problem: `Too many words after "/backup ${verb}".` };
  switch (verb) {
    case 'help':
      return { verb: 'help' };
    case 'audit': {
      if (arg === undefined) return { verb: 'audit', count: 20 };
      const n = Number(arg);
      return Number.isInteger(n) && n >= 1 && n <= 200
        ? { verb: 'audit', count: n }
        : { verb: 'help', problem: '`/backup audit` takes a number of entries from 1 to 200.' };
    }
    case 'checklist': {
      const kind = CHECKLIST_REMINDER_KINDS.find((k) => k === arg);
      return kind ? { verb: 'checklist', kind } : { verb: 'help', problem: '`/backup checklist` takes `daily`, `weekly` or `monthly`.' };
    }
    case 'status':
      return arg === undefined ? { verb: 'status' } : { verb: 'help', problem: '`/backup status` takes no argument.' };
    case 'now':
    case 'list':
    case 'health': {
      if (arg === undefined) return { verb };
      const target = TargetName.safeParse(arg);
      if (!target.success) return { verb: 'help', problem: `"${truncate(arg)}" is not a valid target name.` };
      return { verb, target: target.data };
    }
    default:
      return { verb: 'help', problem: `Unknown command "${truncate(verb)}".` };
  }
}

/** `<label> [target]`: the label keeps its case (it names a ticket or a migration) and never reaches a shell. */
function parsePreMigration(args: string[]): BackupRequest {
  const [label, target, ...rest] = args;
  if (label === undefined)
    return { verb: 'help', problem: '`/backup pre-migration` needs a label naming the migration, e.g. `/backup pre-migration JIRA-1234`.' };
  if (rest.length > 0)
    return {
      verb: 'help',
      problem: 'Too many words after "/backup pre-migration": the label is one word (letters, digits, . _ -), then optionally the target.',
    };
  if (!MigrationLabel.safeParse(label).success) {
    return {
      verb: 'help',
      // Quoted apart from a quote it holds (QA: `""JIRA"` for the label `"JIRA`).
      problem: `${label.includes('"') ? `“${truncate(label)}”` : `"${truncate(label)}"`} is not a valid label: 1–80 characters, letters, digits, . _ - (one word, starting with a letter or digit).`,
    };
  }
  if (target === undefined) return { verb: 'pre-migration', label };
  const t = TargetName.safeParse(target.toLowerCase());
  // "JIRA 42" is most likely one label typed with a space (QA: told only that 42 is no target name).
  if (!t.success)
    return {
      verb: 'help',
      problem: `"${truncate(target)}" is not a valid target name. If it is part of the label, join them: \`/backup pre-migration ${truncate(`${label}-${target}`)}\`.`,
    };
  return { verb: 'pre-migration', label, target: t.data };
}

/** `diff <id-a> <id-b>`: two backup ids (from `/backup list`), in either order. */
function parseDiff(args: string[]): BackupRequest {
  const usage = '`/backup diff` takes two backup ids of one target, e.g. `/backup diff shop-20261201T020000Z shop-20261202T020000Z`.';
  if (args.length !== 2) return { verb: 'help', problem: usage };
  const [a, b] = args as [string, string];
  const bad = [a, b].find((id) => !BackupIdSchema.safeParse(id).success);
  if (bad !== undefined) return { verb: 'help', problem: `"${truncate(bad)}" is not a backup id.${didYouMean(bad)} ${usage}` };
  return { verb: 'diff', a, b };
}

/** `now --physical [target]`, the flag before or after the target. */
function parsePhysical(args: string[]): BackupRequest {
  const rest = args.filter((w) => w.toLowerCase() !== '--physical');
  if (rest.length > 1 || args.length - rest.length > 1)
    return { verb: 'help', problem: 'Too many words after "/backup now --physical": give at most one target.' };
  const [target] = rest;
  if (target === undefined) return { verb: 'now', physical: true };
  const t = TargetName.safeParse(target.toLowerCase());
  if (!t.success) return { verb: 'help', problem: `"${truncate(target)}" is not a valid target name.` };
  return { verb: 'now', target: t.data, physical: true };
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
