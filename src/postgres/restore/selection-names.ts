import { BotError } from '../../errors.ts';
import type { TocEntry } from './toc.ts';

/**
 * What `--table=` and `--schema=` name in a backup's table of contents, read as SQL reads names (restore-scope of
 * selection-plan.ts).
 */

/** `orders`, `shop.orders`, `"Mixed Case"`, `public."Mixed Case"`: quoted parts may hold dots and capitals. */
export function parseTableRef(text: string): { schema: string | null; table: string; quoted: boolean; schemaQuoted: boolean; tableQuoted: boolean } {
  const parts: Array<{ name: string; quoted: boolean }> = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^."]+))\s*(\.|$)/y;
  for (let m = re.exec(text); m; m = re.lastIndex < text.length ? re.exec(text) : null) {
    parts.push(m[1] !== undefined ? { name: m[1].replace(/""/g, '"'), quoted: true } : { name: (m[2] ?? '').trim(), quoted: false });
    if (m[3] === '') break;
  }
  if (parts.length === 0 || parts.length > 2 || parts.some((p) => p.name === '')) {
    throw new BotError('bad_request', `"${text}" is not a table name; write table or schema.table (quote names with dots or capitals).`);
  }
  const [first, second] = parts as [{ name: string; quoted: boolean }, { name: string; quoted: boolean } | undefined];
  const quoted = parts.some((p) => p.quoted);
  return second
    ? { schema: first.name, table: second.name, quoted, schemaQuoted: first.quoted, tableQuoted: second.quoted }
    : { schema: null, table: first.name, quoted, schemaQuoted: false, tableQuoted: first.quoted };
}

/** A name as SQL reads it: quoted, exactly; unquoted, folded to lower case. */
const asSql = (name: string, quoted: boolean) => (quoted ? name : name.toLowerCase());

/**
 * The tables a `--table=` names, as SQL would resolve it: `Account` is account, `"Account"` is "Account" (QA: the
 * bot took "Account" for Account and overwrote the wrong table). Only when nothing has the folded name is an
 * unquoted name matched regardless of case, so `--table=user` still finds Prisma's "User"; two such tables are
 * both returned, and refused as ambiguous.
 */
export function findTables(entries: TocEntry[], text: string, kinds: readonly string[] = ['TABLE']): TocEntry[] {
  const ref = parseTableRef(text);
  const tables = entries.filter((e) => kinds.includes(e.desc));
  const named = (e: TocEntry) => e.tag === asSql(ref.table, ref.tableQuoted) && (ref.schema === null || e.schema === asSql(ref.schema, ref.schemaQuoted));
  const exact = tables.filter(named);
  if (exact.length > 0 || ref.quoted) return exact;
  // Something else holds the folded name (a view `account` beside a table "Account"): SQL would mean that, so no
  // table of another case is taken for it (review).
  if (entries.some((e) => /^(TABLE|VIEW|MATERIALIZED VIEW|FOREIGN TABLE|SEQUENCE)$/.test(e.desc) && named(e))) return [];
  const lower = (s: string) => s.toLowerCase();
  return tables.filter((e) => lower(e.tag) === lower(ref.table) && (ref.schema === null || lower(e.schema) === lower(ref.schema)));
}

/** The schema a `--schema=` names, as findTables reads a table: quoted exactly, else folded, else one of any case. */
export function findSchema(entries: TocEntry[], text: string): string[] {
  const quoted = /^\s*"((?:[^"]|"")*)"\s*$/.exec(text);
  const names = [...new Set(entries.map((e) => (e.desc === 'SCHEMA' ? e.tag : e.schema)).filter((n) => n && n !== '-'))];
  if (quoted) {
    const name = (quoted[1] as string).replace(/""/g, '"');
    return names.filter((n) => n === name);
  }
  const folded = names.filter((n) => n === text.trim().toLowerCase());
  return folded.length > 0 ? folded : names.filter((n) => n.toLowerCase() === text.trim().toLowerCase());
}

/**
 * Tables a quoted name misses only by case (`"audit log"` for "Audit Log"): a quoted name is exact, as in SQL, so
 * findTables finds none; said as a suggestion, never taken for it.
 */
export function otherCase(entries: TocEntry[], text: string): TocEntry[] {
  const ref = parseTableRef(text);
  if (!ref.quoted) return [];
  const lower = (s: string) => s.toLowerCase();
  return entries.filter((e) => e.desc === 'TABLE' && lower(e.tag) === lower(ref.table) && (ref.schema === null || lower(e.schema) === lower(ref.schema)));
}
