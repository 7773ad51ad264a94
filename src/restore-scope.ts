/**
 * Whether a restore names nothing to select, and so means the whole database: a full restore, a replacement, or a
 * restore onto another server. One predicate for the parser, the commands, the workers, the messages and the CLI.
 */
export function isWholeDatabase(s: { tables: readonly string[]; schemas: readonly string[] }): boolean {
  return s.tables.length === 0 && s.schemas.length === 0;
}
