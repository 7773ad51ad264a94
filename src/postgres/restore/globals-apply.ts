import { Writable } from 'node:stream';
import { escapeIdentifier } from 'pg';
import type { Logger } from '../../logger.ts';
import type { Manifest, Storage } from '../../storage/index.ts';
import { findZstd } from '../tools.ts';
import { identityFor } from './decryption.ts';
import { fetchArtifact } from './fetch.ts';
import { serverLabel } from '../connection.ts';
import { sqlStatements } from './db-properties.ts';
import { withMaintenanceClient } from './scratch.ts';
import { keptDifferences } from './globals-differ.ts';

/**
 * The globals artifact (`pg_dumpall --globals-only`) applied to a new server before a restore, so the restored
 * objects keep their owners and grants: roles the server already has are kept as they are (not one of their
 * attributes or passwords changed), roles it lacks are created with theirs, memberships are granted to the roles
 * created here only. Tablespaces and cluster settings are not applied: they name paths and tuning of the old
 * machine; each is said in a note.
 */
export interface GlobalsApplied {
  /** Roles the server had: left as they were. */
  kept: string[];
  created: string[];
  /** Sentences: statements skipped or refused, for the reader to act on. */
  notes: string[];
}

const IDENT = String.raw`("(?:[^"]|"")+"|[^\s";]+)`;
const unquote = (ident: string) => (ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident);

type Statement = { sql: string; role: string | null; kind: 'create' | 'alter' | 'grant' | 'skip' };

export function parseGlobals(sql: string): Statement[] {
  return sqlStatements(sql).map((stmt): Statement => {
    const create = new RegExp(`^CREATE ROLE ${IDENT}$`).exec(stmt);
    if (create) return { sql: stmt, role: unquote(create[1] ?? ''), kind: 'create' };
    const alter = new RegExp(`^ALTER ROLE ${IDENT} `).exec(stmt);
    if (alter) return { sql: stmt, role: unquote(alter[1] ?? ''), kind: 'alter' };
    // GRANT <role>[, …] TO <member> [WITH ADMIN OPTION] [GRANTED BY …]: belongs to the member.
    const grant = new RegExp(`^GRANT .+ TO ${IDENT}`).exec(stmt);
    if (grant && !/ ON /.test(stmt)) return { sql: stmt, role: unquote(grant[1] ?? ''), kind: 'grant' };
    return { sql: stmt, role: null, kind: 'skip' };
  });
}

/**
 * A role as a restore test needs it, and no more: a name that policies, grants and owners can refer to. No
 * password, no LOGIN, no SUPERUSER, REPLICATION, BYPASSRLS, CREATEROLE or CREATEDB: production's credentials and
 * powers are not copied onto a test server.
 */
export function disarmed(s: Statement): Statement {
  if (s.kind !== 'alter') return s;
  const sql = s.sql
    .replace(/ PASSWORD '(?:[^']|'')*'/g, '')
    .replace(/ VALID UNTIL '(?:[^']|'')*'/g, '')
    .replace(/ (SUPERUSER|LOGIN|REPLICATION|BYPASSRLS|CREATEROLE|CREATEDB)(?=[ ;]|$)/g, ' NO$1');
  return { ...s, sql };
}

/** Attributes only a superuser may give or take (PostgreSQL 15 refuses even their NO… forms from anyone else). */
const SUPERUSER_ONLY = / (NO)?(SUPERUSER|REPLICATION|BYPASSRLS)(?=[ ;]|$)/g;

/**
 * An ALTER ROLE as a role that is not a superuser may run it: the NO… forms dropped (a new role has them already), and
 * a SUPERUSER, REPLICATION or BYPASSRLS the old role had dropped too, named so the reader can give it by hand. QA: a
 * CREATEROLE role's "ALTER ROLE … NOSUPERUSER … LOGIN PASSWORD …" was refused whole, leaving every role created
 * unable to log in, and said "created".
 */
function forNonSuperuser(s: Statement): { statement: Statement; withheld: string[] } {
  if (s.kind !== 'alter') return { statement: s, withheld: [] };
  const withheld: string[] = [];
  const sql = s.sql.replace(SUPERUSER_ONLY, (_m, no: string | undefined, what: string) => {
    if (!no) withheld.push(what);
    return '';
  });
  // "ALTER ROLE x WITH NOSUPERUSER" alone (nothing else to set) would be left as "ALTER ROLE x WITH": skipped then.
  return { statement: new RegExp(`^ALTER ROLE ${IDENT} WITH;?$`).test(sql) ? { ...s, kind: 'skip', sql } : { ...s, sql }, withheld };
}

export async function applyGlobals(serverUrl: string, sql: string, log: Logger, o: { disarm?: boolean } = {}): Promise<GlobalsApplied> {
  const parsed = parseGlobals(sql).map((s) => (o.disarm ? disarmed(s) : s));
  return withMaintenanceClient(serverUrl, async (c) => {
    const { rows } = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles');
    const me = (await c.query<{ rolsuper: boolean; me: string }>('SELECT rolsuper, current_user AS me FROM pg_roles WHERE rolname = current_user')).rows[0];
    const superuser = me?.rolsuper === true;
    const existing = new Set(rows.map((r) => r.rolname));
    const named = [...new Set(parsed.filter((s) => s.kind === 'create' && s.role !== null).map((s) => s.role as string))];
    const kept = named.filter((r) => existing.has(r));
    const made: string[] = [];
    const failedRoles = new Set<string>();
    const notes: string[] = [];
    for (const original of parsed) {
      if (original.kind === 'skip') {
        if (/^CREATE TABLESPACE /i.test(original.sql)) notes.push(`not applied (a path on the old server): ${original.sql.slice(0, 120)}`);
        continue;
      }
      if (original.role === null || existing.has(original.role)) continue;
      const { statement: s, withheld } = superuser ? { statement: original, withheld: [] } : forNonSuperuser(original);
      if (s.kind === 'skip') continue;
      if (withheld.length > 0) {
        notes.push(
          `role ${s.role}: created without ${withheld.join(', ')} (only a superuser may give ${withheld.length > 1 ? 'them' : 'it'}): give it by hand if the role needs it.`,
        );
      }
      try {
        await c.query(s.sql);
        if (s.kind === 'create') made.push(original.role);
      } catch (err) {
        if (s.kind !== 'grant') failedRoles.add(original.role);
        notes.push(`role ${s.role}: "${s.sql.replace(/PASSWORD '[^']*'/g, "PASSWORD '…'").slice(0, 120)}" failed: ${(err as Error).message}`);
      }
    }
    // A role whose attributes could not be set is not "created" as the backup has it (no LOGIN, no password).
    const created = made.filter((r) => !failedRoles.has(r));
    const incomplete = made.filter((r) => failedRoles.has(r));
    if (incomplete.length > 0) {
      notes.push(
        `Created without the attributes the backup gives them (LOGIN, password, …): ${incomplete.join(', ')}; they may not be able to log in: set them by hand (ALTER ROLE), or drop them and apply the globals as a superuser.`,
      );
    }
    // A role that is not a superuser may give objects to a role only as a member of it (ALTER … OWNER TO): the
    // restore's owners need it (QA: "must be member of role" failed the restore after the roles were created).
    if (!superuser && me && created.length > 0) {
      const joined: string[] = [];
      for (const r of created) {
        await c.query(`GRANT ${escapeIdentifier(r)} TO ${escapeIdentifier(me.me)}`).then(
          () => joined.push(r),
          (err: unknown) => notes.push(`${me.me} could not be made a member of ${r} (${(err as Error).message}): objects it owns may not be restored.`),
        );
      }
      if (joined.length > 0) {
        notes.push(
          `${me.me} (not a superuser) was made a member of ${joined.join(', ')}, so it may give them their objects: revoke it once the restore is done (REVOKE ${joined.map((r) => escapeIdentifier(r)).join(', ')} FROM ${escapeIdentifier(me.me)}).`,
        );
      }
    }
    // A restore test's roles are names only (disarmed): that the server's differ is no news there.
    if (!o.disarm)
      notes.push(
        ...(await keptDifferences(c, kept, parsed).catch((err: unknown) => [
          `the roles kept could not be compared with the backup's: ${(err as Error).message}`,
        ])),
      );
    log.info({ kept: kept.length, created: created.length, incomplete: incomplete.length, notes: notes.length, superuser }, 'globals applied');
    return { kept, created, notes };
  });
}

/** The backup's globals artifact, fetched (checked against the manifest) and applied to `serverUrl`. */
export async function restoreGlobalsOf(o: {
  manifest: Manifest;
  storage: Storage;
  serverUrl: string;
  /** BACKUP_ENCRYPTION_IDENTITY_FILE: read only when the backup is encrypted. */
  identityFile: string | undefined;
  log: Logger;
  /** Create roles as names only (disarmed): for restore tests. */
  disarm?: boolean;
}): Promise<GlobalsApplied> {
  const identity = await identityFor(o.manifest, o.identityFile);
  let sql = '';
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      sql += chunk.toString('utf8');
      done();
    },
  });
  await fetchArtifact({ manifest: o.manifest, storage: o.storage, role: 'globals', out, zstd: await findZstd(), identity });
  return applyGlobals(o.serverUrl, sql, o.log, { disarm: o.disarm === true });
}

/** "Roles on host:port: kept …; created …." and the notes: what the verdict and the CLI say of applied globals. */
export function rolesLine(serverUrl: string, g: GlobalsApplied): string {
  return `Roles on ${serverLabel(serverUrl)}: kept ${g.kept.join(', ') || 'none'}; created ${g.created.join(', ') || 'none'}.${g.notes.length ? ` ${g.notes.join(' ')}` : ''}`;
}

/**
 * What a restore that failed says of the roles it created for itself: they stay on that server (roles are the
 * cluster's, not the database's, and a second attempt keeps them as they are); null when it created none.
 */
export function rolesLeft(serverUrl: string, g: GlobalsApplied): string | null {
  if (g.created.length === 0) return null;
  return `The roles this restore created on ${serverLabel(serverUrl)} stay there: ${g.created.join(', ')} (another attempt keeps them as they are; DROP ROLE them if none follows).`;
}
