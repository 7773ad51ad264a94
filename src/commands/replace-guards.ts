import { BotError } from '../errors.ts';
import type { Manifest } from '../storage/index.ts';

/** A replacement by a backup of another database than the one replaced: said, since it is rarely what is meant. */
export const otherDatabase = (m: Manifest, database: string): string =>
  m.database.name === database
    ? ''
    : ` *This backup is of the database \`${m.database.name}\`, not \`${database}\`:* ${database} would hold ${m.database.name}'s contents.`;

/**
 * The server's own databases are never replaced by another database's backup (QA: `--into=postgres --yes` replaced the
 * maintenance database with shop's contents, its settings included; template1 was offered too): `postgres` only by a
 * backup of `postgres` itself (an application may live there), the templates never.
 */
export function refuseServerDatabase(database: string, m: Manifest): void {
  const template = database === 'template0' || database === 'template1';
  if (!template && (database !== 'postgres' || m.database.name === 'postgres')) return;
  const what = template ? 'a template every new database on the server is copied from' : "the server's maintenance database";
  throw new BotError(
    'bad_request',
    `${database} is ${what}: the bot does not replace it with a backup of ${m.database.name}. Nothing was started. To get ${m.database.name} back, replace it by its own name (--into=${m.database.name}), or restore into a new database (without --into).`,
  );
}

/** refuseServerDatabase's refusal as a sentence, or null when the database may be replaced. */
export function serverDatabaseRefusal(database: string, m: Manifest): string | null {
  try {
    refuseServerDatabase(database, m);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
