/**
 * Whether a restore names nothing to select, and so means the whole database: a full restore, a replacement, or a
 * restore onto another server. One predicate for the parser, the commands, the workers, the messages and the CLI.
 */
export function isWholeDatabase(s: { tables: readonly string[]; schemas: readonly string[] }): boolean {
  return s.tables.length === 0 && s.schemas.length === 0;
}

/** What a selective restore overwrites, named: "table `a`, schema `b`" (`quote` around each name; '' for the terminal). */
export function scopeNamed(s: { tables: readonly string[]; schemas: readonly string[] }, quote = '`'): string {
  if (isWholeDatabase(s)) return 'the whole database';
  return [...s.tables.map((t) => `table ${quote}${t}${quote}`), ...s.schemas.map((n) => `schema ${quote}${n}${quote}`)].join(', ');
}

/**
 * A confirmed replacement whose database is no longer the one the confirmation described. `byJob`: said by the job,
 * which may find the swap of an earlier attempt of its own (its worker stopped right after), so names that case too.
 */
export const changedSinceShown = (database: string, backupId: string, byJob = false) =>
  `\`${database}\` is not the database this confirmation described: it was replaced or recreated since (another replacement ran first, or by hand${byJob ? `, or an earlier attempt of this job swapped it before its worker stopped: then it holds this backup already, and the database it replaced is kept beside it as ${database}_replaced_…` : ''}). Nothing was changed; run \`/restore ${backupId} --into=${database}\` again to see what it holds now.`;

/** A name as --table= and --schema= take it, as SQL would: a plain lower-case word as it is, else (`User`, `Audit Log`) quoted. */
export const asOption = (name: string) => (/^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`);
