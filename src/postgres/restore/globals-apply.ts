import { Writable } from 'node:stream';
import type { Logger } from '../../logger.ts';
import type { Manifest, Storage } from '../../storage/index.ts';
import { findZstd } from '../tools.ts';
import { identityFor } from './decryption.ts';
import { fetchArtifact } from './fetch.ts';
import { serverLabel } from '../connection.ts';
import { sqlStatements } from './db-properties.ts';
import { withMaintenanceClient } from './scratch.ts';

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

export async function applyGlobals(serverUrl: string, sql: string, log: Logger, o: { disarm?: boolean } = {}): Promise<GlobalsApplied> {
  const statements = parseGlobals(sql).map((s) => (o.disarm ? disarmed(s) : s));
  return withMaintenanceClient(serverUrl, async (c) => {
    const { rows } = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles');
    const existing = new Set(rows.map((r) => r.rolname));
    const named = [...new Set(statements.filter((s) => s.kind === 'create' && s.role !== null).map((s) => s.role as string))];
    const kept = named.filter((r) => existing.has(r));
    const created: string[] = [];
    const notes: string[] = [];
    for (const s of statements) {
      if (s.kind === 'skip') {
        if (/^CREATE TABLESPACE /i.test(s.sql)) notes.push(`not applied (a path on the old server): ${s.sql.slice(0, 120)}`);
        continue;
      }
      if (s.role === null || existing.has(s.role)) continue;
      try {
        await c.query(s.sql);
        if (s.kind === 'create') created.push(s.role);
      } catch (err) {
        notes.push(`role ${s.role}: "${s.sql.replace(/PASSWORD '[^']*'/g, "PASSWORD '…'").slice(0, 120)}" failed: ${(err as Error).message}`);
      }
    }
    log.info({ kept: kept.length, created: created.length, notes: notes.length }, 'globals applied');
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
