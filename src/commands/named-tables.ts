import { findTables, parseTableRef } from '../postgres/restore/selection-names.ts';
import type { TocEntry } from '../postgres/restore/toc.ts';
import { asOption } from '../restore-scope.ts';
import type { Manifest } from '../storage/index.ts';
import { editDistance } from '../storage/backup-suggestions.ts';
import { toUserMessage } from '../errors.ts';

/** The backup's tables as its manifest lists them (counted at the dump), in the shape the name rules read. */
function tablesOf(m: Manifest): TocEntry[] {
  return m.verification.tables.map((t, id) => ({ id, desc: 'TABLE', schema: t.schema, tag: t.table, owner: '', oid: 0, deps: [], line: '' }));
}

/**
 * Every table the backup holds, partitioned parents too (the counts list only tables with rows of their own; the
 * definitions every table), or null when its manifest has no definitions (older backups): then nobody can tell.
 */
function allTablesOf(m: Manifest): TocEntry[] | null {
  if (!m.definitions) return null;
  const seen = new Set<string>();
  const named = [...m.definitions.tables.map((t) => ({ schema: t.schema, table: t.name })), ...m.verification.tables];
  return named
    .filter((t) => !seen.has(`${t.schema}\0${t.table}`) && seen.add(`${t.schema}\0${t.table}`))
    .map((t, id) => ({ id, desc: 'TABLE', schema: t.schema, tag: t.table, owner: '', oid: 0, deps: [], line: '' }));
}

/**
 * `--table=` names the backup does not hold, refused before anything is queued (QA: `/restore … --table=orderz` was
 * queued, then failed in the channel). Only what is sure: a name a view of the backup may hold is left to the restore,
 * which says what it is, and a backup without definitions in its manifest is not judged. The sentence, or null.
 */
export function tablesNotInBackup(m: Manifest, tables: readonly string[]): string | null {
  const entries = allTablesOf(m);
  if (!entries) return null;
  const views = Object.keys(m.definitions?.views ?? {}).map((v) => v.toLowerCase());
  const missing: string[] = [];
  for (const text of tables) {
    let ref: ReturnType<typeof parseTableRef>;
    try {
      ref = parseTableRef(text);
    } catch (err) {
      missing.push(toUserMessage(err).replace(/\.$/, ''));
      continue;
    }
    if (findTables(entries, text).length > 0) continue;
    const table = ref.table.toLowerCase();
    if (views.some((v) => (ref.schema === null ? v.endsWith(`.${table}`) : v === `${ref.schema.toLowerCase()}.${table}`))) continue;
    const near = entries
      .map((e) => ({ e, d: editDistance(table, e.tag.toLowerCase()) }))
      .filter((x) => x.d <= Math.max(2, Math.floor(table.length / 3)))
      .sort((a, b) => a.d - b.d)
      .slice(0, 3)
      .map((x) => `\`--table=${qualified(x.e)}\``);
    missing.push(`no table ${text.includes('"') ? text : `"${text}"`}${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}`);
  }
  return missing.length ? `Backup \`${m.backupId}\` has ${missing.join('; ')}. Nothing was started.` : null;
}

const qualified = (e: TocEntry) => `${asOption(e.schema)}.${asOption(e.tag)}`;

/**
 * What each `--table=` of an overwrite names, as the restore will read it (selection-names.ts), for the confirmation:
 * `User` unquoted is the table user, as SQL folds it, and the confirmation must not say `User` while "User" is
 * another table (QA). Read from the manifest's table list: a name it does not resolve (a view, a typo) is left as
 * typed, and the restore says what it is.
 */
export function namedTablesLine(m: Manifest, tables: readonly string[]): string {
  const entries = tablesOf(m);
  const lines: string[] = [];
  for (const text of tables) {
    let found: TocEntry[];
    try {
      found = findTables(entries, text);
    } catch {
      continue;
    }
    const [only] = found;
    if (found.length !== 1 || !only) continue;
    const ref = parseTableRef(text);
    const lower = (s: string) => s.toLowerCase();
    const others = entries.filter((e) => e !== only && lower(e.tag) === lower(only.tag) && (ref.schema === null || lower(e.schema) === lower(only.schema)));
    const also = others.length
      ? ` (not ${others.map((e) => `\`${qualified(e)}\``).join(', ')}: name ${others.length === 1 ? 'it' : 'one'} as \`--table=${qualified(others[0] as TocEntry)}\`)`
      : '';
    lines.push(`\`--table=${text}\` is \`${qualified(only)}\`${also}`);
  }
  return lines.length ? ` ${lines.join('; ')}.` : '';
}
