import type { Config } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { parsePgUrl, serverLabel } from '../postgres/index.ts';
import { restoreGlobalsOf, rolesLine } from '../postgres/restore/index.ts';
import type { Manifest, Storage } from '../storage/index.ts';

/**
 * Same host and port: the same server, whatever database or user the two URLs name. A URL that cannot be read
 * counts as the same server, so nothing is applied to a server that cannot be told apart from the target's.
 */
export function sameServer(a: string, b: string): boolean {
  const key = (url: string) => {
    const { env } = parsePgUrl(url);
    return `${(env.PGHOST ?? 'localhost').toLowerCase()}:${env.PGPORT ?? '5432'}`;
  };
  try {
    return key(a) === key(b);
  } catch {
    return true;
  }
}

export interface RestoreTestRoles {
  /** For the verdict: the roles applied ("Roles on host:port: kept …; created …") or why none were. */
  notes: string[];
  /** What a problem says of a role the backup's objects name that the scratch server still lacks. */
  missingRole?: { server: string; fix: string };
}

const CREATEROLE = "give the bot's role there CREATEROLE so it can apply the backup's globals, or create the role";

/**
 * A restore test on a server that is not the target's applies the backup's globals there first (roles it has are
 * kept as they are, missing ones created as names only: no password, no LOGIN, no superuser or other powers), so the roles its policies name exist and a missing role does not read as
 * a wrong URL. On the target's own server nothing is applied: its roles are the backup's, and a test must not
 * recreate there a role that was dropped on purpose. Never throws: a test whose roles could not be applied still
 * runs, and a role its restore then misses is named as such.
 */
export async function rolesForRestoreTest(o: {
  config: Config;
  storage: Storage;
  manifest: Manifest;
  /** The scratch server. */
  serverUrl: string;
  targetUrl: string;
  log: Logger;
}): Promise<RestoreTestRoles> {
  if (sameServer(o.serverUrl, o.targetUrl)) return { notes: [] };
  const where = serverLabel(o.serverUrl);
  const server = `the restore-test server ${where}`;
  if (!o.manifest.globals.included) {
    return {
      notes: [`No roles were applied on ${where}: the backup has no globals${o.manifest.globals.note ? ` (${o.manifest.globals.note})` : ''}.`],
      missingRole: { server, fix: 'the backup has no globals to create it from; create the role there' },
    };
  }
  try {
    const g = await restoreGlobalsOf({
      manifest: o.manifest,
      storage: o.storage,
      serverUrl: o.serverUrl,
      identityFile: o.config.encryption.identityFile,
      log: o.log,
      // Names for the restored objects to refer to, not production's passwords, logins or powers.
      disarm: true,
    });
    o.log.info({ kept: g.kept.length, created: g.created, notes: g.notes.length }, 'roles applied on the restore-test server');
    // A statement refused (no CREATEROLE): the role it would have made may be the one the restore misses.
    const refused = g.notes.some((n) => n.startsWith('role '));
    return {
      notes: [rolesLine(o.serverUrl, g)],
      missingRole: { server, fix: refused ? CREATEROLE : "the backup's globals do not define it; create the role there" },
    };
  } catch (err) {
    o.log.warn({ err }, "could not apply the backup's globals on the restore-test server");
    return { notes: [`The backup's roles could not be applied on ${where}: ${toUserMessage(err)}`], missingRole: { server, fix: CREATEROLE } };
  }
}
