import { findTables, parseTableRef } from '../postgres/restore/selection-names.ts';
import type { TocEntry } from '../postgres/restore/toc.ts';
import { asOption } from '../restore-scope.ts';
import type { Manifest } from '../storage/index.ts';

/** The backup's tables as its manifest lists them (counted at the dump), in the shape the name rules read. */
function tablesOf(m: Manifest): TocEntry[] {
  return m.verification.tables.map((t, id) => ({ id, desc: 'TABLE', schema: t.schema, tag: t.table, owner: '', oid: 0, deps: [], line: '' }));
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
