import type pg from 'pg';
import type { Logger } from '../logger.ts';
import type { Definitions, TableDefinition, TablePart } from '../storage/index.ts';
import { IN_SCHEMAS, IN_SCOPE, notExtensionMember, SYSTEM } from './counts.ts';
import { scopeParams, type DumpScope } from './dump-scope.ts';

/**
 * The definitions summary a manifest carries (storage/manifest-definitions.ts), read from the catalogs beside the
 * counts, in the dump's snapshot and within the backup's scope (the same filters as counts.ts). Each object is kept as
 * a short hash of its definition as PostgreSQL prints it (pg_get_indexdef, pg_get_constraintdef, pg_get_triggerdef,
 * pg_get_viewdef, policy expressions…), so comparing two backups names what changed without storing any text.
 *
 * Issue 14's verify room compares whole pg_dump entries (`TABLE shop.orders` as one hash): enough to say a copy
 * differs, not which column went, and it needs the archive rendered again. These catalog reads cost milliseconds.
 */

const hash = (expr: string) => `left(encode(sha256(convert_to(${expr}, 'UTF8')), 'hex'), 16)`;

const TABLES_SQL = `
  SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relispartition AS partition,
    ${hash(`concat_ws('|', c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
      pg_get_expr(c.relpartbound, c.oid), CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, array_to_string(c.reloptions, ','))`)} AS hash
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND ${SYSTEM} AND ${notExtensionMember('pg_class', 'c.oid')} AND ${IN_SCOPE}
  ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`;

// $4: the tables above; a partition's columns are its parent's, so only its own indexes, constraints… are read.
const PARTS_SQL = `
  SELECT 'columns' AS part, a.attrelid AS rel, a.attname AS name,
    ${hash(`concat_ws('|', format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity,
      a.attgenerated, CASE WHEN a.attcollation <> t.typcollation THEN (SELECT collname FROM pg_collation WHERE oid = a.attcollation) END)`)} AS hash
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
    AND NOT (SELECT relispartition FROM pg_class WHERE oid = a.attrelid)
  UNION ALL
  SELECT 'indexes', i.indrelid, ic.relname, ${hash('pg_get_indexdef(i.indexrelid)')}
  FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = ANY ($1::oid[])
  UNION ALL
  SELECT 'constraints', co.conrelid, co.conname, ${hash(`concat_ws('|', co.contype, pg_get_constraintdef(co.oid))`)}
  FROM pg_constraint co WHERE co.conrelid = ANY ($1::oid[])
  UNION ALL
  SELECT 'policies', p.polrelid, p.polname,
    ${hash(`concat_ws('|', p.polcmd, p.polpermissive,
      (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ',' ORDER BY r) FROM unnest(p.polroles) AS r),
      pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))`)}
  FROM pg_policy p WHERE p.polrelid = ANY ($1::oid[])
  UNION ALL
  SELECT 'triggers', tg.tgrelid, tg.tgname, ${hash(`concat_ws('|', pg_get_triggerdef(tg.oid), tg.tgenabled)`)}
  FROM pg_trigger tg WHERE tg.tgrelid = ANY ($1::oid[]) AND NOT tg.tgisinternal`;

const FUNCTIONS_SQL = `
  SELECT format('%s.%s(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS name,
    ${hash(`concat_ws('|', p.prokind, l.lanname, pg_get_function_result(p.oid), p.prosrc, p.probin, p.provolatile, p.prosecdef,
      p.proisstrict, p.proleakproof, p.proparallel, array_to_string(p.proconfig, ','))`)} AS hash
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
  WHERE ${SYSTEM} AND ${IN_SCHEMAS} AND ${notExtensionMember('pg_proc', 'p.oid')}
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i')`;

const VIEWS_SQL = `
  SELECT format('%s.%s', n.nspname, c.relname) AS name, ${hash(`concat_ws('|', c.relkind, pg_get_viewdef(c.oid))`)} AS hash
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('v', 'm') AND ${SYSTEM} AND ${notExtensionMember('pg_class', 'c.oid')} AND ${IN_SCOPE}`;

const named = (rows: Array<{ name: string; hash: string }>) => Object.fromEntries(rows.map((r) => [r.name, r.hash]));

/** The definitions of the database `client` is connected to (inside the dump's snapshot when called from a backup). */
export async function readDefinitions(client: pg.ClientBase, scope?: DumpScope): Promise<Definitions> {
  const params = scopeParams(scope);
  const { rows: tables } = await client.query<{ oid: number; schema: string; name: string; hash: string }>(TABLES_SQL, params);
  const { rows: parts } = await client.query<{ part: TablePart; rel: number; name: string; hash: string }>(PARTS_SQL, [tables.map((t) => t.oid)]);
  const { rows: functions } = await client.query<{ name: string; hash: string }>(FUNCTIONS_SQL, [params[0]]);
  const { rows: views } = await client.query<{ name: string; hash: string }>(VIEWS_SQL, params);
  const byOid = new Map<number, TableDefinition>();
  for (const t of tables) {
    byOid.set(Number(t.oid), { schema: t.schema, name: t.name, hash: t.hash, columns: {}, indexes: {}, constraints: {}, policies: {}, triggers: {} });
  }
  for (const p of parts) {
    const table = byOid.get(Number(p.rel));
    if (table) table[p.part][p.name] = p.hash;
  }
  return { tables: [...byOid.values()], functions: named(functions), views: named(views) };
}

/**
 * readDefinitions inside the backup's snapshot transaction, under a savepoint: the summary only serves drift reports,
 * and a catalog it cannot read (an older server, a function it does not have) must neither fail the backup nor leave
 * the transaction aborted for the counts. Called after the counts, never beside them on the same connection.
 */
export async function summarizeDefinitions(client: pg.ClientBase, scope: DumpScope | undefined, log?: Logger): Promise<Definitions | undefined> {
  await client.query('SAVEPOINT pgbb_definitions');
  try {
    const definitions = await readDefinitions(client, scope);
    await client.query('RELEASE SAVEPOINT pgbb_definitions');
    return definitions;
  } catch (err) {
    log?.warn({ err }, 'could not read the definitions summary; this backup will not show schema drift');
    await client.query('ROLLBACK TO SAVEPOINT pgbb_definitions');
    return undefined;
  }
}
