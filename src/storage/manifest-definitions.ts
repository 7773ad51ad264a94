import { z } from 'zod';

/**
 * A compact summary of a backup's definitions, read from the catalogs in the dump's own snapshot (postgres/
 * definitions.ts): one short hash per named object, so two backups can say which tables, columns, indexes,
 * constraints, policies, triggers, functions and views were added, dropped or changed without keeping their text.
 * Optional in the manifest: backups made before it have none, and are not compared.
 */

/** The first 16 hex digits of the sha256 of an object's normalized definition. */
const Hash = z.string().regex(/^[0-9a-f]{16}$/);
/** Object name → hash; names are unique within their table (or, for functions and views, within the database). */
const Named = z.record(z.string(), Hash);

export const TableDefinitionSchema = z.object({
  schema: z.string(),
  name: z.string(),
  /** The table's own properties: kind, persistence, row security, partition key and bounds, storage options. */
  hash: Hash,
  /** Columns by name (a partition's are its parent's and are left out). */
  columns: Named,
  indexes: Named,
  constraints: Named,
  policies: Named,
  triggers: Named,
});
export type TableDefinition = z.infer<typeof TableDefinitionSchema>;

export const DefinitionsSchema = z.object({
  tables: z.array(TableDefinitionSchema),
  /** `schema.name(argument types)` → hash: functions, procedures and aggregates. */
  functions: Named,
  /** `schema.name` → hash: views and materialized views. */
  views: Named,
});
export type Definitions = z.infer<typeof DefinitionsSchema>;

/** The kinds of a table's own objects, in the order changes are listed. */
export const TABLE_PARTS = ['columns', 'indexes', 'constraints', 'policies', 'triggers'] as const;
export type TablePart = (typeof TABLE_PARTS)[number];
