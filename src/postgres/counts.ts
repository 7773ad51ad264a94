import type pg from 'pg';
import { escapeIdentifier } from 'pg';
import type { ObjectCounts, TableCount } from '../storage/index.ts';
import { scopeParams, type DumpScope } from './dump-scope.ts';

/**
 * What a backup holds, counted the same way in the dump's snapshot and later in a restored copy, so a restore
 * test compares like with like. Everything excludes the system schemas (pg_catalog, information_schema, pg_toast,
 * pg_temp_*: every `pg_*` name is reserved) and objects that belong to an extension (pg_depend deptype 'e'),
 * since those come back from CREATE EXTENSION rather than from the dump.
 *
 * Definitions (keep in step with the SQL below):
 * - schemas: user schemas, `public` included.
 * - tables: relkind 'r', i.e. ordinary tables and leaf partitions; partitionedTables: relkind 'p'.
 * - constraints: pg_constraint by contype p/f/u/c/x on those tables and on domains (domain CHECKs count as 'c'),
 *   including the per-partition copies PostgreSQL creates for constraints on partitioned tables.
 * - indexes: pg_index rows on counted tables and materialized views, partitioned indexes included.
 * - functions: prokind 'f' or 'p' (procedures); aggregates: prokind 'a'; window functions are not counted, nor
 *   functions PostgreSQL generates itself (range and multirange constructors: an internal dependency, 'i').
 * - triggers: pg_trigger rows with tgisinternal false (FK triggers are internal and left out).
 * - sequences 'S' (serial and identity ones included), views 'v', materializedViews 'm'.
 * - domains: typtype 'd'.
 * - types: enums ('e'), ranges ('r'), stand-alone composite types (typtype 'c' whose pg_class row has relkind
 *   'c', so not the row type of a table) and user base types ('b') that are not some type's array type.
 *   Multiranges are left out: PostgreSQL creates one with every range.
 * - extensions: every row of pg_extension (plpgsql included; a new database has it too); none when the backup is
 *   limited to some schemas (pg_dump --schema dumps no extension).
 * - policies: pg_policy rows on counted tables; rowSecurityTables: counted tables with row-level security enabled;
 *   largeObjects: pg_largeobject_metadata rows, none when the backup is limited to some schemas (pg_dump --schema
 *   dumps no large object). Recorded since 2026-12-07: older manifests lack them, and they are then not compared.
 * - Only what the backup's scope covers (`--schema`, `--exclude-table`; see dump-scope.ts) is counted.
 */

/** SQL fragments shared with definitions.ts, which reads definitions within the same scope. */
export const SYSTEM = `n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'`;
export const notExtensionMember = (catalog: string, oid: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${catalog}'::regclass AND d.objid = ${oid} AND d.deptype = 'e')`;

/**
 * The backup's scope (dump-scope.ts), as parameters: $1 schema regexes (empty: all), $2/$3 excluded tables as
 * schema regex (null: any) and name regex. pg_dump's `--exclude-table` applies to tables, sequences, views,
 * materialized views, foreign and partitioned tables; an identity sequence goes with its table, a serial one does not.
 */
export const IN_SCHEMAS = `(cardinality($1::text[]) = 0 OR n.nspname ~ ANY ($1::text[]))`;
const excludedRelation = (nsp: string, rel: string) =>
  `EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS x(sch, tbl) WHERE (x.sch IS NULL OR ${nsp} ~ x.sch) AND ${rel} ~ x.tbl)`;
export const IN_SCOPE = `${IN_SCHEMAS}
    AND NOT (c.relkind IN ('r', 'S', 'v', 'm', 'f', 'p') AND ${excludedRelation('n.nspname', 'c.relname')})
    AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT 1 FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i'
        AND ${excludedRelation('tn.nspname', 't.relname')}))`;

const USER_RELATIONS = `
  SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE ${SYSTEM} AND ${notExtensionMember('pg_class', 'c.oid')} AND ${IN_SCOPE}`;

const OBJECTS_SQL = `
WITH ns AS (
  SELECT n.oid FROM pg_namespace n WHERE ${SYSTEM} AND ${notExtensionMember('pg_namespace', 'n.oid')} AND ${IN_SCHEMAS}
), rel AS (${USER_RELATIONS}
), con AS (
  SELECT co.contype FROM pg_constraint co
  WHERE co.connamespace IN (SELECT oid FROM ns) AND ${notExtensionMember('pg_constraint', 'co.oid')}
    AND (co.conrelid IN (SELECT oid FROM rel) OR co.contypid <> 0)
), typ AS (
  SELECT t.oid, t.typtype, t.typrelid FROM pg_type t
  WHERE t.typnamespace IN (SELECT oid FROM ns) AND ${notExtensionMember('pg_type', 't.oid')}
), fn AS (
  SELECT p.prokind FROM pg_proc p
  WHERE p.pronamespace IN (SELECT oid FROM ns) AND ${notExtensionMember('pg_proc', 'p.oid')}
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i')
)
SELECT
  (SELECT count(*) FROM ns)::int AS schemas,
  (SELECT count(*) FROM rel WHERE relkind = 'r')::int AS tables,
  (SELECT count(*) FROM rel WHERE relkind = 'p')::int AS partitioned_tables,
  (SELECT count(*) FROM con WHERE contype = 'p')::int AS con_p,
  (SELECT count(*) FROM con WHERE contype = 'f')::int AS con_f,
  (SELECT count(*) FROM con WHERE contype = 'u')::int AS con_u,
  (SELECT count(*) FROM con WHERE contype = 'c')::int AS con_c,
  (SELECT count(*) FROM con WHERE contype = 'x')::int AS con_x,
  (SELECT count(*) FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rel))::int AS indexes,
  (SELECT count(*) FROM fn WHERE prokind IN ('f', 'p'))::int AS functions,
  (SELECT count(*) FROM fn WHERE prokind = 'a')::int AS aggregates,
  (SELECT count(*) FROM pg_trigger tg WHERE tg.tgrelid IN (SELECT oid FROM rel) AND NOT tg.tgisinternal)::int AS triggers,
  (SELECT count(*) FROM rel WHERE relkind = 'S')::int AS sequences,
  (SELECT count(*) FROM rel WHERE relkind = 'v')::int AS views,
  (SELECT count(*) FROM rel WHERE relkind = 'm')::int AS materialized_views,
  (SELECT count(*) FROM typ WHERE typtype = 'd')::int AS domains,
  (SELECT count(*) FROM typ WHERE typtype IN ('e', 'r')
     OR (typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = typ.typrelid) = 'c')
     OR (typtype = 'b' AND NOT EXISTS (SELECT 1 FROM pg_type a WHERE a.typarray = typ.oid)))::int AS types,
  -- pg_dump --schema dumps no extensions.
  (CASE WHEN cardinality($1::text[]) = 0 THEN (SELECT count(*) FROM pg_extension) ELSE 0 END)::int AS extensions,
  (SELECT count(*) FROM pg_policy pol WHERE pol.polrelid IN (SELECT oid FROM rel))::int AS policies,
  (SELECT count(*) FROM pg_class rc WHERE rc.oid IN (SELECT oid FROM rel) AND rc.relrowsecurity)::int AS row_security,
  (CASE WHEN cardinality($1::text[]) = 0 THEN (SELECT count(*) FROM pg_largeobject_metadata) ELSE 0 END)::int AS large_objects`;

interface ObjectsRow {
  schemas: number;
  tables: number;
  partitioned_tables: number;
  con_p: number;
  con_f: number;
  con_u: number;
  con_c: number;
  con_x: number;
  indexes: number;
  functions: number;
  aggregates: number;
  triggers: number;
  sequences: number;
  views: number;
  materialized_views: number;
  domains: number;
  types: number;
  extensions: number;
  policies: number;
  row_security: number;
  large_objects: number;
}

/**
 * Object counts of the database `client` is connected to (inside the dump's snapshot when called from a backup),
 * within `scope` when the backup covers only part of it.
 */
export async function countObjects(client: pg.ClientBase, scope?: DumpScope): Promise<ObjectCounts> {
  const { rows } = await client.query<ObjectsRow>(OBJECTS_SQL, scopeParams(scope));
  const r = rows[0];
  if (!r) throw new Error('the object count query returned no row');
  return {
    schemas: r.schemas,
    tables: r.tables,
    partitionedTables: r.partitioned_tables,
    constraints: { p: r.con_p, f: r.con_f, u: r.con_u, c: r.con_c, x: r.con_x },
    indexes: r.indexes,
    functions: r.functions,
    aggregates: r.aggregates,
    triggers: r.triggers,
    sequences: r.sequences,
    views: r.views,
    materializedViews: r.materialized_views,
    domains: r.domains,
    types: r.types,
    extensions: r.extensions,
    policies: r.policies,
    rowSecurityTables: r.row_security,
    largeObjects: r.large_objects,
  };
}

/**
 * The size on disk (heap and TOAST, no indexes) of the tables countRows counts: what pg_dump will read, roughly,
 * and so the total a first backup's progress is said against (dump-progress.ts). One catalog query, no scan.
 */
export async function tablesOnDisk(client: pg.ClientBase, scope?: DumpScope): Promise<number> {
  const { rows } = await client.query<{ bytes: string }>(
    `
    SELECT coalesce(sum(pg_table_size(c.oid)), 0)::text AS bytes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND ${SYSTEM} AND ${notExtensionMember('pg_class', 'c.oid')} AND ${IN_SCOPE}`,
    scopeParams(scope),
  );
  return Number(rows[0]?.bytes ?? 0);
}

/**
 * Exact `count(*)` of every table that holds rows (relkind 'r': ordinary tables and leaf partitions; a
 * partitioned parent has none of its own), sorted by schema then table in byte order. Unlogged tables are
 * included because pg_dump dumps their data.
 */
export async function countRows(client: pg.ClientBase, scope?: DumpScope): Promise<TableCount[]> {
  const { rows: tables } = await client.query<{ schema: string; table: string }>(
    `
    SELECT n.nspname AS schema, c.relname AS table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND ${SYSTEM} AND ${notExtensionMember('pg_class', 'c.oid')} AND ${IN_SCOPE}
    ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"`,
    scopeParams(scope),
  );
  const out: TableCount[] = [];
  for (const t of tables) {
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${escapeIdentifier(t.schema)}.${escapeIdentifier(t.table)}`);
    out.push({ schema: t.schema, table: t.table, rows: Number(rows[0]?.n ?? 0) });
  }
  return out;
}
