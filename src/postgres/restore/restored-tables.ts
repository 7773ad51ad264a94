import pg from 'pg';
import { escapeIdentifier } from 'pg';
import { formatCount } from '../../format.ts';
import type { TableCount } from '../../storage/index.ts';
import { tableName } from './compare.ts';
import { pgClientConfig } from '../connection.ts';

export interface RestoredTable {
  /** `schema.table`, as people read it. */
  name: string;
  schema: string;
  table: string;
  /** Exact count(*) in the database restored into. */
  rows: number;
  /** The count in the backup's snapshot; null if the manifest has none for this table. */
  expectedRows: number | null;
}

/** Counts the restored tables where they landed and compares each with the count taken in the dump's snapshot. */
export async function countRestoredTables(
  url: string,
  tables: Array<{ schema: string; table: string }>,
  expected: TableCount[],
): Promise<{ tables: RestoredTable[]; problems: string[] }> {
  const want = new Map(expected.map((t) => [tableName(t), t.rows]));
  const client = new pg.Client(pgClientConfig(url));
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query('SET statement_timeout = 0');
    const out: RestoredTable[] = [];
    const problems: string[] = [];
    for (const t of tables) {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${escapeIdentifier(t.schema)}.${escapeIdentifier(t.table)}`);
      const n = Number(rows[0]?.n ?? 0);
      const name = tableName(t);
      const expectedRows = want.get(name) ?? null;
      out.push({ name, schema: t.schema, table: t.table, rows: n, expectedRows });
      if (expectedRows !== null && expectedRows !== n) problems.push(`${name}: ${formatCount(expectedRows)} rows expected, ${formatCount(n)} restored`);
    }
    return { tables: out, problems };
  } finally {
    await client.end().catch(() => undefined);
  }
}
