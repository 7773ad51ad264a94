import { withClient } from './postgres-helpers.ts';

/**
 * What a database holds, read with plain SQL and none of the bot's code, so a restore can be compared with its
 * source by something other than the bot's own checks: the database's properties and settings, every table's
 * rows (an md5 over its rows as text, sorted byte-wise so the database's collation cannot reorder them), the
 * definitions of columns, constraints, indexes, policies, triggers, functions, enums, sequences and views, owners
 * and grants, and the large objects with their contents. `expect(copy).toEqual(source)` then names what differs.
 */
export interface Fingerprint {
  database: Record<string, string | null>;
  settings: string[];
  /** `string_agg(x ORDER BY x)` over a, B, c, _z: shows which collation sorts unqualified text. */
  collationOrder: string;
  tables: Record<string, { rows: number; md5: string; owner: string; acl: string | null; rls: boolean }>;
  definitions: string[];
  largeObjects: Record<string, string>;
}

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`;

export async function fingerprint(url: string): Promise<Fingerprint> {
  return withClient(url, async (c) => {
    const q = async <R extends Record<string, unknown>>(sql: string) => (await c.query<R>(sql)).rows;
    const [db] = await q<Record<string, string | null>>(`
      SELECT d.datcollate, d.datctype, d.datlocprovider::text AS provider, d.daticulocale AS icu, pg_encoding_to_char(d.encoding) AS encoding,
             shobj_description(d.oid, 'pg_database') AS comment
      FROM pg_database d WHERE d.datname = current_database()`);
    const settings = await q<{ s: string }>(`
      SELECT coalesce(r.rolname, '(all roles)') || ': ' || array_to_string(s.setconfig, ', ') AS s
      FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
      WHERE d.datname = current_database() ORDER BY 1`);
    const [order] = await q<{ o: string }>(`SELECT string_agg(x, ',' ORDER BY x) AS o FROM (VALUES ('a'), ('B'), ('c'), ('_z')) v(x)`);
    const rels = await q<{ name: string; owner: string; acl: string | null; rls: boolean }>(`
      SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS acl, c.relrowsecurity AS rls
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'm') AND ${USER_SCHEMAS}
        AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.objid = c.oid AND dep.deptype = 'e')
      ORDER BY 1`);
    const tables: Fingerprint['tables'] = {};
    for (const r of rels) {
      const [h] = await q<{ rows: string; md5: string }>(
        `SELECT count(*)::text AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE "C"), '')) AS md5 FROM ${r.name} t`,
      );
      tables[r.name] = { rows: Number(h?.rows), md5: h?.md5 ?? '', owner: r.owner, acl: r.acl, rls: r.rls };
    }
    const definitions = (
      await q<{ d: string }>(`
      SELECT 'column ' || format('%I.%I.%I', n.nspname, c.relname, a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
             || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
             || CASE a.attgenerated WHEN 's' THEN ' generated' ELSE '' END AS d
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
      WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm') AND ${USER_SCHEMAS}
      UNION ALL SELECT 'constraint ' || format('%I.%I', n.nspname, c.relname) || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
      FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_SCHEMAS}
      UNION ALL SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${USER_SCHEMAS}
      UNION ALL SELECT 'policy ' || format('%I.%I', schemaname, tablename) || ' ' || policyname || ' ' || cmd || ' ' || coalesce(qual, '') || ' ' || coalesce(with_check, '')
      FROM pg_policies
      UNION ALL SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text FROM pg_trigger t WHERE NOT t.tgisinternal
      UNION ALL SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE ${USER_SCHEMAS} AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.objid = p.oid AND dep.deptype = 'e')
      UNION ALL SELECT 'enum ' || format('%I.%I', n.nspname, t.typname) || ' ' || string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
      FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n ON n.oid = t.typnamespace GROUP BY n.nspname, t.typname
      UNION ALL SELECT 'sequence ' || format('%I.%I', schemaname, sequencename) || ' last_value=' || coalesce(last_value::text, 'null') FROM pg_sequences
      UNION ALL SELECT 'view ' || format('%I.%I', n.nspname, c.relname) || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND ${USER_SCHEMAS}
      UNION ALL SELECT 'schema ' || n.nspname || ' owner=' || pg_get_userbyid(n.nspowner) FROM pg_namespace n WHERE ${USER_SCHEMAS}
      UNION ALL SELECT 'comment ' || c.oid::regclass::text || ' ' || d.description FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
        AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
      ORDER BY 1`)
    ).map((r) => r.d);
    const largeObjects: Record<string, string> = {};
    for (const lo of await q<{ oid: string; md5: string }>('SELECT oid::text AS oid, md5(lo_get(oid)) AS md5 FROM pg_largeobject_metadata ORDER BY oid')) {
      largeObjects[lo.oid] = lo.md5;
    }
    return { database: db ?? {}, settings: settings.map((s) => s.s), collationOrder: order?.o ?? '', tables, definitions, largeObjects };
  });
}
