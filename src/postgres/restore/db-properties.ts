import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg, { escapeIdentifier } from 'pg';
import type { Logger } from '../../logger.ts';
import { pgClientConfig, serverLabel } from '../connection.ts';
import type { Archive } from './archive.ts';

/**
 * What a database is beyond its objects, as the archive holds it: its locale (an ICU collation sorts text
 * differently), `ALTER DATABASE … SET` (an unqualified query fails without the search_path), its CONNECTION LIMIT and
 * IS_TEMPLATE (a template's copy is one too: dropDatabase clears it first),
 * per-role settings in it, its comment, and its grants (`REVOKE CONNECT ON DATABASE … FROM PUBLIC`). pg_restore
 * applies these only with `--create`, which restores under the source's name; every restore of ours goes into a
 * database of another name, so they are read from the archive's database entries (`pg_restore --create -L` of just
 * those, as SQL, no connection) and applied to that name.
 */
export interface DatabaseProperties {
  /** The source database's name, as the archive has it. */
  source: string;
  /** The locale options of its CREATE DATABASE (`ENCODING = 'UTF8' LOCALE_PROVIDER = icu …`), checked one by one. */
  createOptions: string;
  /**
   * Statements for the restored database, `{{db}}` standing for its quoted name; role-scoped ones name the role.
   * `acl`: a GRANT or REVOKE on the database, applied only where owners and grants are kept (as pg_restore's
   * --no-acl leaves out those of its objects).
   */
  statements: Array<{ sql: string; role: string | null; acl?: true }>;
  /** Its owner (`ALTER DATABASE … OWNER TO`), quoted as the archive has it; given to the copy only when owners are kept. */
  owner?: string;
}

const DATABASE_ENTRY = /^\d+; \d+ \d+ (DATABASE - |COMMENT - DATABASE |DATABASE PROPERTIES - |ACL - DATABASE )/;
/** The options pg_dump writes for CREATE DATABASE that say how text is stored and sorted; TEMPLATE is ours. */
const LOCALE_OPTIONS = new Set(['ENCODING', 'LOCALE_PROVIDER', 'LOCALE', 'LC_COLLATE', 'LC_CTYPE', 'ICU_LOCALE', 'ICU_RULES']);
const IDENT = String.raw`(?:"(?:[^"]|"")+"|[^\s";]+)`;

/** Reads the database entries of the archive; null when it has none (an archive made without them). */
export async function readDatabaseProperties(archive: Archive, log: Logger): Promise<DatabaseProperties | null> {
  const listed = await archive.pgRestore(['--create', '--list'], { env: {}, captureStdout: true, partialRead: true });
  if (!listed.ok) throw new Error(`pg_restore --list: ${listed.exit}`);
  const entries = listed.stdout.split('\n').filter((l) => DATABASE_ENTRY.test(l));
  if (entries.length === 0) return null;
  const dir = await mkdtemp(join(tmpdir(), 'pgbb-dbprops-'));
  try {
    const list = join(dir, 'database.list');
    await writeFile(list, `${entries.join('\n')}\n`, { mode: 0o600 });
    const script = await archive.pgRestore(['--create', '--use-list', list, '--file', '-'], { env: {}, captureStdout: true, partialRead: true });
    if (!script.ok) throw new Error(`pg_restore --create --use-list: ${script.exit}`);
    const props = parseDatabaseScript(script.stdout);
    if (props)
      log.debug({ source: props.source, options: props.createOptions, statements: props.statements.length }, 'database properties read from the archive');
    return props;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The CREATE DATABASE options and the statements about the database, out of pg_restore's script. */
export function parseDatabaseScript(script: string): DatabaseProperties | null {
  let source: string | null = null;
  let createOptions = '';
  const statements: DatabaseProperties['statements'] = [];
  let owner: string | undefined;
  for (const stmt of sqlStatements(script)) {
    const create = new RegExp(`^CREATE DATABASE (${IDENT}) WITH (.*)$`, 's').exec(stmt);
    if (create) {
      source = unquote(create[1] ?? '');
      createOptions = localeOptions(create[2] ?? '');
      continue;
    }
    const onDb = new RegExp(
      `^(COMMENT ON DATABASE |ALTER DATABASE )(${IDENT})( (?:IS|SET|RESET) .*| CONNECTION LIMIT = -?\\d+| IS_TEMPLATE = (?:true|false))$`,
      's',
    ).exec(stmt);
    if (onDb) {
      statements.push({ sql: `${onDb[1]}{{db}}${onDb[3]}`, role: null });
      continue;
    }
    const grant = new RegExp(`^((?:GRANT|REVOKE) [A-Z, ]+ ON DATABASE )${IDENT}( (?:TO|FROM) .*)$`, 's').exec(stmt);
    if (grant) {
      statements.push({ sql: `${grant[1]}{{db}}${grant[2]}`, role: null, acl: true });
      continue;
    }
    const roleIn = new RegExp(`^ALTER ROLE (${IDENT}) IN DATABASE (${IDENT})( (?:SET|RESET) .*)$`, 's').exec(stmt);
    if (roleIn) statements.push({ sql: `ALTER ROLE ${roleIn[1]} IN DATABASE {{db}}${roleIn[3]}`, role: unquote(roleIn[1] ?? '') });
    // The owner is kept apart: only a restore that keeps owners (a replacement, --with-globals) gives it to the copy.
    const ownedBy = new RegExp(`^ALTER DATABASE ${IDENT} OWNER TO (${IDENT})$`, 's').exec(stmt);
    if (ownedBy) owner = ownedBy[1];
  }
  return source === null ? null : { source, createOptions, statements, ...(owner ? { owner } : {}) };
}

/** Only `KEY = value` pairs of known locale options; anything else in the text is dropped, never run. */
function localeOptions(text: string): string {
  const out: string[] = [];
  for (const m of text.matchAll(/([A-Z_]+) = ('(?:[^']|'')*'|[A-Za-z0-9_]+)/g)) {
    if (LOCALE_OPTIONS.has(m[1] ?? '')) out.push(`${m[1]} = ${m[2]}`);
  }
  return out.join(' ');
}

/** Statements of a psql script: `;` ends one outside quotes; psql meta-commands and comment lines are skipped. */
export function sqlStatements(script: string): string[] {
  const body = script
    .split('\n')
    .filter((l) => !l.startsWith('\\') && !l.startsWith('--'))
    .join('\n');
  const out: string[] = [];
  let start = 0;
  let quote: string | null = null;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === ';') {
      const stmt = body.slice(start, i).trim();
      if (stmt) out.push(stmt);
      start = i + 1;
    }
  }
  return out;
}

function unquote(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replace(/""/g, '"') : ident;
}

/**
 * Applies the settings, the connection limit, the comment and, where owners are kept, the owner and the grants to
 * the restored database `name`. A setting for a role the server does not
 * have is skipped (a scratch server need not have the source's roles); any other statement that fails is returned
 * as a sentence, for the verdict: a restored database without its search_path does not behave as the source did.
 */
export async function applyDatabaseProperties(
  serverUrl: string,
  name: string,
  props: DatabaseProperties,
  log: Logger,
  o: { owners: boolean },
): Promise<string[]> {
  const problems: string[] = [];
  // Owners kept: the copy is the source's owner's, as its objects are (compared with the archive's `OWNER TO`).
  const owner = o.owners && props.owner ? [{ sql: `ALTER DATABASE {{db}} OWNER TO ${props.owner}`, role: unquote(props.owner) }] : [];
  // Its grants after its owner, who grants them (the grantor pg_dump prints); none where grants are not kept.
  const statements = props.statements.filter((s) => o.owners || !s.acl);
  const client = new pg.Client(pgClientConfig(serverUrl));
  client.on('error', () => undefined);
  await client.connect();
  try {
    for (const s of [...owner, ...statements]) {
      if (s.role !== null) {
        const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [s.role]);
        if (!rowCount) {
          log.info({ role: s.role }, 'per-role database setting skipped: the role does not exist on this server');
          continue;
        }
      }
      await client.query(s.sql.replace('{{db}}', escapeIdentifier(name))).catch((err: unknown) => {
        problems.push(
          `database setting not applied on ${serverLabel(serverUrl)}: ${s.sql.replace('{{db}}', name)} (${err instanceof Error ? err.message : String(err)})`,
        );
      });
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  return problems;
}

/**
 * Where owners are kept, the restored database is given its source owner before pg_restore runs (and again with the
 * rest after it). Since PostgreSQL 15 the public schema is the database owner's, and giving an object there to a role
 * needs that role to have CREATE on it: left the restoring role's until after the restore, every `ALTER … OWNER TO`
 * in public failed for a restorer that is not a superuser (QA: "permission denied for schema public").
 */
export async function ownerFirst(serverUrl: string, name: string, props: DatabaseProperties, log: Logger): Promise<void> {
  if (!props.owner) return;
  // Said in the log: a restore that then fails on "must be member of role" has its cause there (second reader).
  const problems = await applyDatabaseProperties(serverUrl, name, { ...props, statements: [] }, log, { owners: true });
  if (problems.length) log.warn({ problems }, 'the restored database could not be given its owner before the restore');
}
