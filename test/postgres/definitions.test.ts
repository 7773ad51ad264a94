import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { compareDefinitions } from '../../src/drift/index.ts';
import { readDefinitions } from '../../src/postgres/definitions.ts';
import { loadSampleSchema } from '../e2e/harness.ts';
import { createTestDatabase, runSql } from '../support/databases.ts';

let db: Awaited<ReturnType<typeof createTestDatabase>>;

async function read(scope?: { schemas: string[]; excludeTables: string[] }) {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return await readDefinitions(client, scope);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase(inject('pgUrl'), 'defs');
  await loadSampleSchema(db.url);
  await runSql(
    db.url,
    'ALTER TABLE shop.customers ENABLE ROW LEVEL SECURITY; CREATE POLICY own ON shop.customers USING (true); CREATE TABLE public.notes (id int);',
  );
});

afterAll(async () => {
  await db?.drop();
});

describe('readDefinitions', () => {
  it('reads every table with its columns, indexes, constraints, policies and triggers, and the functions and views', async () => {
    const d = await read();
    const customers = d.tables.find((t) => t.schema === 'shop' && t.name === 'customers');
    expect(Object.keys(customers?.columns ?? {}).sort()).toEqual(['created_at', 'email', 'full_name', 'id', 'shipping_address', 'updated_at']);
    expect(Object.keys(customers?.indexes ?? {}).sort()).toEqual(['customers_email_key', 'customers_pkey']);
    expect(Object.keys(customers?.policies ?? {})).toEqual(['own']);
    expect(Object.keys(customers?.triggers ?? {})).toEqual(['customers_touch']);
    expect(customers?.constraints).toHaveProperty('customers_full_name_check');
    // A partition's columns are its parent's: listed once, on the parent.
    expect(d.tables.find((t) => t.name === 'orders_2024')?.columns).toEqual({});
    expect(Object.keys(d.tables.find((t) => t.name === 'orders')?.columns ?? {})).toContain('note');
    expect(d.functions).toHaveProperty(['shop.first_non_null(anyelement)']);
    expect(Object.keys(d.views).sort()).toEqual(['shop.customer_order_totals', 'shop.monthly_revenue']);
  });

  it('reads the same twice, and tells a changed policy, a dropped column and a new index apart', async () => {
    const before = await read();
    expect(compareDefinitions(before, await read())).toEqual([]);
    await runSql(
      db.url,
      'ALTER POLICY own ON shop.customers USING (id > 0); ALTER TABLE shop.customers DROP COLUMN shipping_address; CREATE INDEX ON shop.products (name);',
    );
    expect(compareDefinitions(before, await read()).map((c) => `${c.kind} ${c.name} ${c.change}`)).toEqual([
      'column shop.customers.shipping_address dropped',
      'index products_name_idx on shop.products added',
      'policy own on shop.customers changed',
    ]);
  });

  it('stays within the backup’s scope', async () => {
    const d = await read({ schemas: ['shop'], excludeTables: ['shop.delivery_slots'] });
    expect(d.tables.map((t) => `${t.schema}.${t.name}`)).not.toContain('public.notes');
    expect(d.tables.map((t) => t.name)).not.toContain('delivery_slots');
    expect(d.tables.map((t) => t.name)).toContain('customers');
  });
});
