import pg from 'pg';

/**
 * The benchmark database: ~600 MB of varied, reproducible data generated server-side. Text is built from a
 * Zipf-like vocabulary (word k = letters mapped from md5(k), small k far more frequent), so it compresses
 * like prose rather than like md5 noise or one repeated string. Each table is created, filled and indexed in
 * one transaction: with wal_level=minimal that skips WAL entirely, which keeps the build fast.
 */

const WORDS = 5000;

const FUNCTIONS = `
create function bench_word(k int) returns text language sql immutable as
  $$ select translate(substr(md5(k::text), 1, 2 + k % 9), '0123456789abcdef', 'etaoinshrdlucmpy') $$;
-- random()^3 skews towards small k: a few very common words and a long tail, as in real text.
create function bench_text(n int) returns text language sql volatile as
  $$ select string_agg(bench_word(floor(${WORDS} * random() ^ 3)::int), ' ') from generate_series(1, n) $$;
`;

/** Scale multiplies row counts; 1 gives ~600 MB. Each entry is one transaction. */
function tables(scale: number): Record<string, string> {
  const n = (rows: number) => Math.max(1, Math.round(rows * scale));
  const months = Array.from({ length: 12 }, (_, i) => {
    const from = `2024-${String(i + 1).padStart(2, '0')}-01`;
    const to = i === 11 ? '2025-01-01' : `2024-${String(i + 2).padStart(2, '0')}-01`;
    return `create table orders_2024_${String(i + 1).padStart(2, '0')} partition of orders for values from ('${from}') to ('${to}');`;
  }).join('\n');
  return {
    articles: `
      create table articles (id int, title text not null, body text not null, published_at timestamptz, views bigint);
      insert into articles select g, initcap(bench_text(4 + g % 6)), bench_text(120 + g % 120),
        timestamptz '2015-01-01' + random() * interval '10 years', floor(random() ^ 4 * 1e6)::bigint
      from generate_series(1, ${n(100_000)}) g;
      alter table articles add primary key (id);`,
    customers: `
      create table customers (id int, name text not null, email text not null, country char(2) not null,
        created_at timestamptz not null, balance numeric(12,2) not null, notes text);
      insert into customers select g,
        initcap(bench_word(floor(${WORDS} * random() ^ 2)::int)) || ' ' || initcap(bench_word(floor(${WORDS} * random())::int)),
        bench_word(floor(${WORDS} * random())::int) || g || '@' || (array['example.com','mail.test','corp.invalid'])[1 + g % 3],
        (array['US','DE','FR','GB','JP','BR','IN','CA'])[1 + floor(random() * 8)::int],
        timestamptz '2020-01-01' + random() * interval '5 years', round((random() * 10000)::numeric, 2),
        case when random() < 0.3 then bench_text(5 + g % 20) end
      from generate_series(1, ${n(300_000)}) g;
      alter table customers add primary key (id);
      create index customers_email on customers (email);`,
    events: `
      create table events (id bigint, at timestamptz not null, doc jsonb not null);
      insert into events select g, timestamptz '2024-01-01' + g * interval '7 seconds', jsonb_build_object(
        'type', (array['click','view','purchase','signup','error'])[1 + floor(random() * 5)::int],
        'user', jsonb_build_object('id', floor(random() * 300000)::int, 'agent', bench_word(floor(50 * random())::int)),
        'tags', jsonb_build_array(bench_word(floor(200 * random())::int), bench_word(floor(200 * random())::int)),
        'amount', round((random() * 500)::numeric, 2), 'ok', random() < 0.9,
        'message', bench_text(8 + g % 20))
      from generate_series(1, ${n(300_000)}) g;
      alter table events add primary key (id);
      create index events_doc on events using gin (doc jsonb_path_ops);`,
    orders: `
      create table orders (id bigint not null, customer_id int not null, ordered_at timestamptz not null,
        status text not null, amount numeric(12,2) not null, quantity int not null, sku text not null)
        partition by range (ordered_at);
      ${months}
      insert into orders select g, 1 + floor(random() * 300000)::int,
        timestamptz '2024-01-01' + random() * (timestamptz '2025-01-01' - timestamptz '2024-01-01'),
        (array['new','paid','shipped','delivered','refunded'])[1 + floor(random() ^ 2 * 5)::int],
        round((random() * 300)::numeric, 2), 1 + floor(random() ^ 3 * 10)::int,
        'SKU-' || upper(substr(md5((g % 20000)::text), 1, 8))
      from generate_series(1, ${n(1_500_000)}) g;
      alter table orders add primary key (id, ordered_at);
      create index orders_customer on orders (customer_id);`,
    metrics: `
      create table metrics (sensor_id int not null, ts timestamptz not null, value double precision not null, reading numeric(10,3));
      insert into metrics select 1 + g % 500, timestamptz '2024-06-01' + (g / 500) * interval '10 seconds',
        sin(g / 5000.0) * 100 + random() * 5, case when random() < 0.95 then round((random() * 1000)::numeric, 3) end
      from generate_series(1, ${n(1_500_000)}) g;
      create index metrics_ts on metrics using brin (ts);`,
  };
}

/**
 * A client whose connection errors reject the running query instead of crashing the process: on Ctrl-C the
 * server is stopped under open connections, and an unhandled 'error' event would skip the clean-up.
 */
export function client(url: string): pg.Client {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => undefined);
  return c;
}

/** Two connections for two cores, balanced by measured time: articles (~55 s) against the rest. */
const LANES: string[][] = [['articles'], ['events', 'orders', 'customers', 'metrics']];

async function lane(url: string, seed: number, names: string[], sql: Record<string, string>, log: (m: string) => void) {
  const c = client(url);
  await c.connect();
  try {
    // Fixed seed per connection and no parallel workers (they have their own seeds): same data every run.
    await c.query(`set max_parallel_workers_per_gather = 0; set timezone = 'UTC'; set maintenance_work_mem = '256MB'; select setseed(${seed})`);
    for (const name of names) {
      const t0 = performance.now();
      await c.query(`begin; ${sql[name] ?? ''} commit;`);
      await c.query(`vacuum (freeze, analyze) ${name}`); // hint bits set now, so no leg pays for them later (see below)
      log(`  ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await c.end();
  }
}

/** Creates database `dbName` on the server of `adminUrl` and fills it. Returns the new database's URL. */
export async function buildDataset(adminUrl: string, dbName: string, scale: number, log: (m: string) => void): Promise<string> {
  const admin = client(adminUrl);
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${dbName}`);
    await admin.query(`create database ${dbName}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  const dbUrl = url.toString();
  const c = client(dbUrl);
  await c.connect();
  await c.query(FUNCTIONS).finally(() => c.end());
  const sql = tables(scale);
  await Promise.all(LANES.map((names, i) => lane(dbUrl, 0.1 * (i + 1), names, sql, log)));
  // Once more with both lanes done. Each lane's VACUUM ran while the other lane's transaction was open, so it could
  // not mark the pages it visited all-visible (measured: four of the five tables had no page in the visibility map).
  // A database that autovacuum keeps looks like this one; a count(*) or index-only scan on the other would read
  // every heap page where production would not.
  const v = client(dbUrl);
  await v.connect();
  await v.query('vacuum (freeze, analyze)').finally(() => v.end());
  return dbUrl;
}
