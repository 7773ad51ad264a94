import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase } from '../support/databases.ts';

const SCHEMA_FILE = fileURLToPath(new URL('../../src/dev/sample-schema.sql', import.meta.url));

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

describe('src/dev/sample-schema.sql', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let loadMs = 0;

  beforeAll(async () => {
    db = await createTestDatabase(inject('pgUrl'), 'sample');
    const sql = await readFile(SCHEMA_FILE, 'utf8');
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const started = performance.now();
    await c.query(sql); // the whole file as one simple-protocol query, as the demo loads it
    loadMs = performance.now() - started;
    await c.end();
  });
  afterAll(() => db.drop());

  it('loads through a single pg query() quickly', () => {
    // Budget is 1 s on a quiet machine; allow slack for a loaded CI runner.
    expect(loadMs).toBeLessThan(3000);
    console.info(`sample schema loaded in ${loadMs.toFixed(0)} ms`);
  });

  it('has the domains, enum and composite types', async () => {
    const rows = await query<{ typname: string; typtype: string }>(
      db.url,
      `select typname, typtype from pg_type where typnamespace = 'shop'::regnamespace
         and (typtype in ('d', 'e') or (typtype = 'c' and typrelid in (select oid from pg_class where relkind = 'c'))) order by 1`,
    );
    expect(rows).toEqual([
      { typname: 'address', typtype: 'c' },
      { typname: 'email', typtype: 'd' },
      { typname: 'money_amount', typtype: 'd' },
      { typname: 'order_status', typtype: 'e' },
      { typname: 'sku', typtype: 'd' },
    ]);
  });

  it('has a range-partitioned orders table with three yearly partitions and a default one holding rows', async () => {
    const parts = await query<{ part: string; is_default: boolean }>(
      db.url,
      `select c.relname as part, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' as is_default
       from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'shop.orders'::regclass order by 1`,
    );
    expect(parts.map((p) => p.part)).toEqual(['orders_2024', 'orders_2025', 'orders_2026', 'orders_default']);
    expect(parts.filter((p) => p.is_default).map((p) => p.part)).toEqual(['orders_default']);
    const counts = await query<{ part: string; n: string }>(
      db.url,
      'select tableoid::regclass::text as part, count(*)::text as n from shop.orders group by 1 order by 1',
    );
    expect(counts.map((c) => c.part)).toEqual(['shop.orders_2024', 'shop.orders_2025', 'shop.orders_2026', 'shop.orders_default']);
    for (const c of counts) expect(Number(c.n)).toBeGreaterThan(0);
  });

  it('has foreign keys (one into the partitioned table), unique, check and exclusion constraints', async () => {
    const rows = await query<{ contype: string; n: string }>(
      db.url,
      "select contype, count(*)::text as n from pg_constraint where connamespace = 'shop'::regnamespace and conislocal group by 1",
    );
    const count = Object.fromEntries(rows.map((r) => [r.contype, Number(r.n)]));
    expect(count.f).toBeGreaterThanOrEqual(4);
    expect(count.u).toBeGreaterThanOrEqual(3);
    expect(count.c).toBeGreaterThanOrEqual(4);
    expect(count.x).toBe(1);
    const [fk] = await query<{ ok: boolean }>(
      db.url,
      "select exists (select 1 from pg_constraint where conrelid = 'shop.order_items'::regclass and confrelid = 'shop.orders'::regclass) as ok",
    );
    expect(fk?.ok).toBe(true);
  });

  it('enforces the exclusion constraint and the domain checks', async () => {
    await expect(query(db.url, "insert into shop.delivery_slots (during) values (tstzrange('2026-01-05 08:30+00', '2026-01-05 09:30+00'))")).rejects.toThrow(
      /delivery_slots_no_overlap/,
    );
    await expect(query(db.url, "insert into shop.customers (email, full_name) values ('not-an-email', 'x')")).rejects.toThrow(/email/);
  });

  it('maintains updated_at through its trigger', async () => {
    const [row] = await query<{ changed: boolean }>(
      db.url,
      "update shop.customers set full_name = 'Renamed', updated_at = '2000-01-01' where id = 1 returning updated_at > '2001-01-01' as changed",
    );
    expect(row?.changed).toBe(true);
  });

  it('has the view, materialized view, custom aggregate, identity columns, sequence and GIN index', async () => {
    const [r] = await query<Record<string, string>>(
      db.url,
      `select
        (select count(*) from pg_views where schemaname = 'shop')::text as views,
        (select count(*) from pg_matviews where schemaname = 'shop' and ispopulated)::text as matviews,
        (select count(*) from pg_aggregate a join pg_proc p on p.oid = a.aggfnoid where p.pronamespace = 'shop'::regnamespace)::text as aggregates,
        (select count(*) from pg_attribute where attrelid in (select oid from pg_class where relnamespace = 'shop'::regnamespace) and attidentity <> '')::text as identities,
        (select count(*) from pg_trigger t join pg_class c on c.oid = t.tgrelid where c.relnamespace = 'shop'::regnamespace and not t.tgisinternal)::text as triggers,
        (select count(*) from pg_indexes where schemaname = 'shop' and indexdef like '%USING gin%')::text as gin_indexes,
        (select count(*) from pg_sequences where schemaname = 'shop' and sequencename = 'order_number_seq')::text as sequences,
        (select count(*) from shop.monthly_revenue)::text as revenue_months,
        (select count(*) from shop.products where attributes @> '{"tags": ["featured"]}')::text as featured`,
    );
    expect(r).toEqual({
      views: '1',
      matviews: '1',
      aggregates: '1',
      identities: '4',
      triggers: '2',
      gin_indexes: '1',
      sequences: '1',
      revenue_months: expect.stringMatching(/^[1-9]\d*$/),
      featured: '20',
    });
  });

  it('holds a few thousand deterministic rows', async () => {
    const [r] = await query<Record<string, string>>(
      db.url,
      `select (select count(*) from shop.customers)::text as customers, (select count(*) from shop.products)::text as products,
              (select count(*) from shop.orders)::text as orders, (select count(*) from shop.order_items)::text as items,
              (select count(*) from shop.delivery_slots)::text as slots`,
    );
    expect(r).toEqual({ customers: '500', products: '200', orders: '3000', items: '7500', slots: '240' });
  });

  it('also loads with psql -v ON_ERROR_STOP=1 -f', async () => {
    const other = await createTestDatabase(inject('pgUrl'), 'sample_psql');
    try {
      const { stderr } = await promisify(execFile)('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', other.url, '-f', SCHEMA_FILE]);
      expect(stderr).toBe('');
      const [r] = await query<{ n: string }>(other.url, 'select count(*)::text as n from shop.order_items');
      expect(r?.n).toBe('7500');
    } finally {
      await other.drop();
    }
  });
});
