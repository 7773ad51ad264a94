import { describe, expect, it } from 'vitest';
import { compareCounts } from '../../../src/postgres/restore/compare.ts';
import { scratchName } from '../../../src/postgres/restore/scratch.ts';
import type { ObjectCounts } from '../../../src/storage/index.ts';

const objects: ObjectCounts = {
  schemas: 2,
  tables: 3,
  partitionedTables: 1,
  constraints: { p: 3, f: 2, u: 1, c: 1, x: 0 },
  indexes: 21,
  functions: 4,
  aggregates: 1,
  triggers: 2,
  sequences: 3,
  views: 1,
  materializedViews: 1,
  domains: 1,
  types: 2,
  extensions: 1,
};
const tables = [
  { schema: 'shop', table: 'customers', rows: 1_204_311 },
  { schema: 'shop', table: 'orders_2024', rows: 946 },
  { schema: 'shop', table: 'x', rows: 1 },
];

describe('compareCounts', () => {
  it('finds nothing to say when everything matches, and lists what it compared', () => {
    const c = compareCounts({ tables, objects }, { tables: structuredClone(tables), objects: structuredClone(objects) });
    expect(c.problems).toEqual([]);
    expect(c.tables).toBe(3);
    expect(c.objects).toEqual(expect.arrayContaining(['indexes', 'constraints (f)', 'partitioned tables', 'materialized views', 'extensions']));
    expect(c.objects).toHaveLength(18);
  });

  it('says every difference in one sentence, numbers with thousands separators', () => {
    const restored = {
      tables: [
        { schema: 'shop', table: 'customers', rows: 1_204_310 },
        { schema: 'shop', table: 'orders_2024', rows: 0 },
        { schema: 'shop', table: 'stray', rows: 3 },
      ],
      objects: { ...objects, indexes: 20, constraints: { ...objects.constraints, f: 1 } },
    };
    expect(compareCounts({ tables, objects }, restored).problems).toEqual([
      'shop.customers: 1,204,311 rows expected, 1,204,310 restored',
      'shop.orders_2024: 946 rows expected, 0 restored',
      'table shop.x missing after restore',
      "table shop.stray restored but not in the backup's manifest",
      'constraints (f): 2 expected, 1 restored',
      'indexes: 21 expected, 20 restored',
    ]);
  });
});

describe('scratchName', () => {
  it('derives a stable pgbb_rt_<12 hex> name from a key, different per key', () => {
    expect(scratchName('job:42')).toMatch(/^pgbb_rt_[0-9a-f]{6}_[0-9a-f]{12}$/);
    expect(scratchName('job:42', 'a')).not.toBe(scratchName('job:42', 'b'));
    expect(scratchName('job:42')).toBe(scratchName('job:42'));
    expect(scratchName('job:43')).not.toBe(scratchName('job:42'));
  });
});
