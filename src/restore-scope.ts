/**
 * Whether a restore names nothing to select, and so means the whole database: a full restore, a replacement, or a
 * restore onto another server. One predicate for the parser, the commands, the workers, the messages and the CLI.
 */
export function isWholeDatabase(s: { tables: readonly string[]; schemas: readonly string[] }): boolean {
  return s.tables.length === 0 && s.schemas.length === 0;
}

/** A confirmed replacement whose database is no longer the one the confirmation described. */
export const changedSinceShown = (database: string, backupId: string) =>
  `\`${database}\` is not the database this confirmation described: it was replaced or recreated since (another replacement ran first, or by hand). Nothing was changed; run \`/restore ${backupId} --into=${database}\` again to see what it holds now.`;
