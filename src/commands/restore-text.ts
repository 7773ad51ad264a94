import { parseRecoveryTime } from '../postgres/pitr/recovery-time.ts';
import { toUserMessage } from '../errors.ts';
import { z } from 'zod';
import { TargetName } from '../target-name.ts';
import { BackupIdSchema } from '../storage/index.ts';
import { isWholeDatabase } from '../restore-scope.ts';
import { didYouMean, straightened, unwrapWord } from './typed-ids.ts';

/** What `/restore-test …` can ask for. */
export type RestoreTestRequest =
  | { verb: 'run'; which: { latest: true; target?: string } | { latest: false; backupId: string } }
  | { verb: 'history'; target?: string }
  /** `/restore-test pitr [target] [time|latest|random]`: a point-in-time restore test; `at` is checked by the handler. */
  | { verb: 'pitr'; target?: string; at: string }
  | { verb: 'help'; problem?: string };

/** What `/restore <backup-id> …` asks for: the whole database (no tables, no schemas) into a new database, or tables and/or schemas into a new or an existing one. */
export type RestoreRequest =
  | {
      verb: 'restore';
      backupId: string;
      tables: string[];
      schemas: string[];
      into: string | null;
      /** `--to=restore-server`: onto RESTORE_SERVER_URL, for when the target's own server is gone. */
      toRestoreServer?: true;
      /** `--with-globals` (admins): the backup's roles applied there first, so owners and grants come back. */
      withGlobals?: true;
    }
  | { verb: 'list'; target?: string }
  | { verb: 'drop'; database: string }
  | { verb: 'help'; problem?: string };

const Word = /^[A-Za-z0-9_.=-]{1,128}$/;
// A table is `name` or `schema.name`, each part an SQL identifier, unquoted or in double quotes (Prisma's
// "User", a table named "Audit Log"). Nothing of it reaches a shell or SQL: it is matched against the archive's
// table of contents, and only the archive's own entries go to pg_restore.
const IDENT = String.raw`(?:[A-Za-z_][A-Za-z0-9_$]{0,62}|"(?:[^"\u0000-\u001f]|""){1,63}")`;
const Ident = z.string().regex(new RegExp(`^${IDENT}$`));
const TableRef = z.string().regex(new RegExp(`^(?:${IDENT}\\.)?${IDENT}$`));
/** `--table=`/`--schema=` values may hold quotes and spaces; their own check is Ident/TableRef. */
const NamedOption = /^--(table|schema)=/;
/** A database name as teams write them: letters, digits, _, $ and - (QA: `my-app` was refused), at most 63 bytes. */
const DatabaseName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/);
const NOT_A_DATABASE = 'a database name here is letters, digits, _, $ and -, starting with a letter or _, at most 63 characters';

export const RESTORE_TEST_USAGE = [
  '*Usage:* `/restore-test <what>`',
  '• `/restore-test latest [target]` — restore the newest backup into a scratch database and compare it with its manifest',
  '• `/restore-test <backup-id>` — the same for one backup (ids from `/backup list`)',
  '• `/restore-test history [target]` — past restore tests, newest first',
  '• `/restore-test pitr [target] [latest|random|<time>]` — point-in-time recovery into a scratch cluster, to a time with its offset (e.g. `2026-12-03 14:30:00+01`), checked to the exact point',
].join('\n');

export const RESTORE_USAGE = [
  '*Usage:* `/restore <backup-id> [--table=<[schema.]table>]… [--schema=<schema>]… [--into=<database>]`',
  '• `/restore <backup-id>` alone restores the whole database into a new database on the target’s server, verified like a restore test, named in the reply.',
  '• `/restore <backup-id> --into=<database>` replaces that database with the backup (admins, after a confirmation): restored and verified beside it, then swapped by name; the old one is kept.',
  '• `/restore <backup-id> --to=restore-server [--with-globals]` — the whole database onto RESTORE_SERVER_URL, for when the target’s server is gone; `--with-globals` (admins) applies the backup’s roles there first',
  '• `/restore list [target]` — the databases restores made and replacements kept (who, when, from which backup, size)',
  '• `/restore drop <database>` — drop one of them (a kept `…_replaced_…` database: admins)',
  '• Without `--into`, the objects are restored into a new database, named in the reply.',
  '• `--into=<database>` overwrites the named objects in an existing database: only allowed users, after a confirmation.',
].join('\n');

function words(raw: string): string[] | { bad: string } {
  const list = tokens(raw);
  if (list === null) return { bad: raw.trim() };
  const bad = list.find((w) => !Word.test(w) && !NamedOption.test(w));
  return bad === undefined ? list : { bad };
}

/**
 * Words split on spaces outside double quotes, so `--table="Audit Log"` is one. Slack's curly quotes count as
 * straight ones, and a value in single quotes (`--table='"Audit Log"'`, as a shell wants it) is unwrapped, as is a
 * word in backticks or quotes (an id pasted as Slack code).
 * Null when a double quote is left open.
 */
function tokens(raw: string): string[] | null {
  const text = straightened(raw);
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text.trim()) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && /\s/.test(ch)) {
      if (current) out.push(current);
      current = '';
    } else current += ch;
  }
  if (quoted) return null;
  if (current) out.push(current);
  return out.map((w) => unwrapWord(w).replace(/^(--(?:table|schema)=)'(.*)'$/, '$1$2'));
}

const cut = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s);

function parsePitrText(rest: string): RestoreTestRequest {
  const w = rest.trim().split(/\s+/).filter(Boolean);
  let target: string | undefined;
  const first = w[0];
  if (first !== undefined && !/^\d/.test(first) && !/^(latest|random)$/i.test(first)) {
    if (!TargetName.safeParse(first).success) return { verb: 'help', problem: `"${cut(first)}" is not a valid target name.` };
    target = first;
    w.shift();
  }
  const when = w.join(' ');
  let at = when === '' ? 'latest' : /^(latest|random)$/i.test(when) ? when.toLowerCase() : when;
  // Read as the worker and restore-pitr read it (recovery-time.ts), and passed on as the moment it names (UTC, to the
  // millisecond): every way the bot writes a time is taken back (QA: "2026-12-07 17:55:30 UTC", as /backup health
  // shows it, and "Mon 2026-12-07 18:55:30 UTC+01:00", as the CLI's list does, were refused here).
  if (at !== 'latest' && at !== 'random') {
    try {
      at = parseRecoveryTime(at).toISOString();
    } catch (err) {
      return { verb: 'help', problem: `${toUserMessage(err).replace(/\.$/, '')}; or say \`latest\`.` };
    }
  }
  return target === undefined ? { verb: 'pitr', at } : { verb: 'pitr', target, at };
}

export function parseRestoreTestText(raw: string): RestoreTestRequest {
  const pitr = /^\s*pitr(?:\s+([\s\S]*))?$/i.exec(raw.replace(/[\u201C\u201D\u2018\u2019"']/g, ''));
  if (pitr) return parsePitrText(pitr[1] ?? '');
  const w = words(raw);
  if (!Array.isArray(w)) return { verb: 'help', problem: `"${cut(w.bad)}" is not something /restore-test understands.` };
  const [first, second, ...rest] = w;
  if (first === undefined || first.toLowerCase() === 'help') return { verb: 'help' };
  if (rest.length > 0) return { verb: 'help', problem: 'Too many words.' };
  const verb = first.toLowerCase();
  if (verb === 'latest' || verb === 'history') {
    if (second !== undefined && !TargetName.safeParse(second).success) return { verb: 'help', problem: `"${cut(second)}" is not a valid target name.` };
    if (verb === 'history') return second === undefined ? { verb: 'history' } : { verb: 'history', target: second };
    return { verb: 'run', which: second === undefined ? { latest: true } : { latest: true, target: second } };
  }
  if (BackupIdSchema.safeParse(first).success) {
    if (second !== undefined) return { verb: 'help', problem: `Too many words: \`/restore-test ${cut(first)}\` takes the backup id alone.` };
    return { verb: 'run', which: { latest: false, backupId: first } };
  }
  return { verb: 'help', problem: `"${cut(first)}" is neither \`latest\`, \`history\` nor a backup id.${didYouMean(first)}` };
}

/** The command that lists backups where the user types: Slack's, or the CLI's. */
const LIST = { slack: '/backup list', cli: 'pg-backup-bot list' } as const;

/** Where the words came from, so a problem points at the command the user can type there. */
const SURFACES = {
  slack: { restore: '/restore', list: `\`${LIST.slack}\``, restoreList: '`/restore list`' },
  cli: { restore: '`pg-backup-bot restore`', list: `\`${LIST.cli}\``, restoreList: '`pg-backup-bot restore list`' },
} as const;

/** The same command for one target, for a backup id with no backup (storage/catalog.ts findBackup's `seeList`). */
export const SEE_LIST = {
  slack: (target: string) => `\`${LIST.slack} ${target}\``,
  cli: (target: string) => `\`${LIST.cli} ${target}\``,
} as const;

export function parseRestoreText(raw: string, surface: keyof typeof SURFACES = 'slack'): RestoreRequest {
  const said = SURFACES[surface];
  const w = words(raw);
  if (!Array.isArray(w)) return { verb: 'help', problem: `"${cut(w.bad)}" is not something ${said.restore} understands.` };
  const [id, ...opts] = w;
  // A terminal has no help text beside the usage: there, name where the ids are.
  if (id === undefined && surface === 'cli') return { verb: 'help', problem: `Name the backup to restore: ${said.list} shows their ids.` };
  if (id === undefined || id === 'help') return { verb: 'help' };
  // As /backup's words: in any case (QA: `/restore LIST` was "not a backup id").
  const word = id?.toLowerCase();
  if (word === 'list' || word === 'drop') return listOrDrop(word, opts, said);
  if (!BackupIdSchema.safeParse(id).success) return { verb: 'help', problem: `"${cut(id)}" is not a backup id (see ${said.list}).${didYouMean(id)}` };
  const tables: string[] = [];
  const schemas: string[] = [];
  let into: string | null = null;
  const onto: { toRestoreServer?: true; withGlobals?: true } = {};
  for (const opt of opts) {
    if (opt === '--to=restore-server') {
      onto.toRestoreServer = true;
      continue;
    }
    if (opt === '--with-globals') {
      onto.withGlobals = true;
      continue;
    }
    const m = /^--(table|schema|into)=(.+)$/.exec(opt);
    if (!m) return { verb: 'help', problem: `"${cut(opt)}" is not an option of ${said.restore}.` };
    const [, key, value = ''] = m;
    if (key === 'table') {
      if (!TableRef.safeParse(value).success) return { verb: 'help', problem: `"${cut(value)}" is not a table name.` };
      tables.push(value);
    } else if (key === 'schema') {
      if (!Ident.safeParse(value).success) return { verb: 'help', problem: `"${cut(value)}" is not a schema name.` };
      schemas.push(value);
    } else {
      if (into !== null) return { verb: 'help', problem: 'Give `--into` once.' };
      if (!DatabaseName.safeParse(value).success) return { verb: 'help', problem: `"${cut(value)}" is not a database name (${NOT_A_DATABASE}).` };
      into = value;
    }
  }
  if ((onto.toRestoreServer || onto.withGlobals) && (into !== null || !isWholeDatabase({ tables, schemas }))) {
    return { verb: 'help', problem: '`--to=restore-server` and `--with-globals` restore the whole database into a new one: give them a backup id alone.' };
  }
  if (onto.withGlobals && !onto.toRestoreServer)
    return { verb: 'help', problem: '`--with-globals` goes with `--to=restore-server`: the target’s own server already has its roles.' };
  return { verb: 'restore', backupId: id, tables, schemas, into, ...onto };
}

/** `/restore list [target]` and `/restore drop <database>`: the databases restores made. */
function listOrDrop(verb: 'list' | 'drop', rest: string[], said: (typeof SURFACES)[keyof typeof SURFACES]): RestoreRequest {
  const [arg, ...extra] = rest;
  if (extra.length > 0) return { verb: 'help', problem: 'Too many words.' };
  if (verb === 'list') {
    if (arg === undefined) return { verb: 'list' };
    return TargetName.safeParse(arg).success ? { verb: 'list', target: arg } : { verb: 'help', problem: `"${cut(arg)}" is not a valid target name.` };
  }
  if (arg === undefined) return { verb: 'help', problem: `Name the database to drop: ${said.restoreList} shows them.` };
  if (!DatabaseName.safeParse(arg).success) return { verb: 'help', problem: `"${cut(arg)}" is not a database name (${NOT_A_DATABASE}).` };
  return { verb: 'drop', database: arg };
}

/** A database a replacement kept (`<name>_replaced_<stamp>`): dropping it is the admins' call. */
export const REPLACED_NAME = /_replaced_\d{8}t\d{6}$/;
