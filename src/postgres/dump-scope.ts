/**
 * What a target's backup covers: pg_dump's `--schema` and `--exclude-table` patterns (config `schemas`,
 * `excludeTables`), and the same selection as regular expressions for the counts taken beside the dump. The
 * counts must cover only what is dumped, or every restore test of such a backup would report the excluded tables
 * as missing; a restore test recounts the restored copy within the same scope (kept in the manifest).
 */

export interface DumpScope {
  /** pg_dump `--schema` patterns; empty: every schema. */
  schemas: string[];
  /** pg_dump `--exclude-table` patterns (`audit_log`, `shop.audit_*`). */
  excludeTables: string[];
}

export const isWholeDatabase = (scope: DumpScope | undefined): boolean => !scope || (scope.schemas.length === 0 && scope.excludeTables.length === 0);

/** pg_dump arguments, one word each (the config schema keeps patterns to a safe alphabet that cannot start an option). */
export function dumpScopeArgs(scope: DumpScope): string[] {
  return [...scope.schemas.map((s) => `--schema=${s}`), ...scope.excludeTables.map((t) => `--exclude-table=${t}`)];
}

/**
 * One part of a pg_dump pattern as a PostgreSQL regular expression, the way pg_dump (psql's processSQLNamePattern)
 * reads it: unquoted letters fold to lower case, `*` is any run of characters, `?` one character, everything else
 * literal, and the whole name must match. Double quotes keep case.
 */
export function patternPartRegex(part: string): string {
  let out = '';
  let quoted = false;
  for (const ch of part) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '*') out += '.*';
    else if (!quoted && ch === '?') out += '.';
    else if (/[|*+?()[\]{}.^$\\]/.test(ch)) out += `\\${ch}`;
    else out += quoted ? ch : ch.toLowerCase();
  }
  return `^(${out})$`;
}

/** Splits on unquoted dots: `shop.audit_*` → schema `shop`, table `audit_*`; `db.shop.t` keeps the last two parts. */
function splitPattern(pattern: string): string[] {
  const parts: string[] = [''];
  let quoted = false;
  for (const ch of pattern) {
    if (ch === '"') quoted = !quoted;
    if (ch === '.' && !quoted) parts.push('');
    else parts[parts.length - 1] += ch;
  }
  return parts;
}

/**
 * Query parameters for counts.ts: schema regexes, then the exclusions as parallel arrays of schema regex (null: any
 * schema) and table regex. An unqualified exclusion matches the name in every schema, where pg_dump matches only
 * tables visible on the search path: counting a little less than was dumped is harmless, because the restored copy
 * is counted through the same filter; counting something that was not dumped would fail every restore test.
 */
export function scopeParams(scope: DumpScope | undefined): [string[], Array<string | null>, string[]] {
  const schemas = (scope?.schemas ?? []).map((s) => patternPartRegex(s));
  const exSchemas: Array<string | null> = [];
  const exTables: string[] = [];
  for (const pattern of scope?.excludeTables ?? []) {
    const parts = splitPattern(pattern);
    const table = parts[parts.length - 1] ?? '';
    const schema = parts.length > 1 ? (parts[parts.length - 2] ?? null) : null;
    exSchemas.push(schema === null ? null : patternPartRegex(schema));
    exTables.push(patternPartRegex(table));
  }
  return [schemas, exSchemas, exTables];
}
