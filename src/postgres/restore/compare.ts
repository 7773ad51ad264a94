import { formatCount } from '../../format.ts';
import type { ObjectCounts, TableCount } from '../../storage/index.ts';

/** What a backup held (its manifest) against what a restore produced, as sentences people can act on. */

export interface Counts {
  tables: TableCount[];
  objects: ObjectCounts;
}

export interface Comparison {
  problems: string[];
  /** Tables whose row counts were compared. */
  tables: number;
  /** The object kinds compared, as named in the sentences. */
  objects: string[];
}

/** Every counted kind with the label the sentences use; keep in step with ObjectCounts. */
const KINDS: Array<[string, (o: ObjectCounts) => number | undefined]> = [
  ['schemas', (o) => o.schemas],
  ['tables', (o) => o.tables],
  ['partitioned tables', (o) => o.partitionedTables],
  ['constraints (p)', (o) => o.constraints.p],
  ['constraints (f)', (o) => o.constraints.f],
  ['constraints (u)', (o) => o.constraints.u],
  ['constraints (c)', (o) => o.constraints.c],
  ['constraints (x)', (o) => o.constraints.x],
  ['indexes', (o) => o.indexes],
  ['functions', (o) => o.functions],
  ['aggregates', (o) => o.aggregates],
  ['triggers', (o) => o.triggers],
  ['sequences', (o) => o.sequences],
  ['views', (o) => o.views],
  ['materialized views', (o) => o.materializedViews],
  ['domains', (o) => o.domains],
  ['types', (o) => o.types],
  ['extensions', (o) => o.extensions],
  ['row-level security policies', (o) => o.policies],
  ['tables with row-level security on', (o) => o.rowSecurityTables],
  ['large objects', (o) => o.largeObjects],
];

export const tableName = (t: { schema: string; table: string }) => `${t.schema}.${t.table}`;

const rows = (n: number) => `${formatCount(n)} ${n === 1 ? 'row' : 'rows'}`;

/** Exact equality or a sentence per difference, e.g. `shop.orders_2024: 946 rows expected, 0 restored`. */
export function compareCounts(expected: Counts, restored: Counts): Comparison {
  const problems: string[] = [];
  const got = new Map(restored.tables.map((t) => [tableName(t), t.rows]));
  for (const t of expected.tables) {
    const name = tableName(t);
    const n = got.get(name);
    got.delete(name);
    if (n === undefined) problems.push(`table ${name} missing after restore`);
    else if (n !== t.rows) problems.push(`${name}: ${rows(t.rows)} expected, ${formatCount(n)} restored`);
  }
  for (const name of got.keys()) problems.push(`table ${name} restored but not in the backup's manifest`);
  // A kind an older manifest did not count is not compared (nor named as compared).
  const kinds = KINDS.filter(([, count]) => count(expected.objects) !== undefined);
  for (const [label, count] of kinds) {
    const want = count(expected.objects) ?? 0;
    const have = count(restored.objects) ?? 0;
    if (want !== have) problems.push(`${label}: ${formatCount(want)} expected, ${formatCount(have)} restored`);
  }
  return { problems, tables: expected.tables.length, objects: kinds.map(([label]) => label) };
}
