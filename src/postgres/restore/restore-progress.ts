import pg from 'pg';
import { formatBytes, formatCount } from '../../format.ts';
import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import { pgClientConfig } from '../connection.ts';

/**
 * How far a restore has come, against the totals the manifest holds (taken in the dump's snapshot): tables whose
 * rows are all in, rows in, and the database's size against the source's. Read from the database being restored
 * into (pg_stat_user_tables counts a table's rows once its COPY has committed), so it costs pg_restore nothing.
 */
export interface RestoreProgress {
  tablesDone: number;
  tables: number;
  rowsDone: number;
  rows: number;
  bytes: number;
  sourceBytes: number;
}

export function describeProgress(p: RestoreProgress): string {
  return `${formatCount(p.tablesDone)} of ${formatCount(p.tables)} tables, ${formatCount(p.rowsDone)} of ${formatCount(p.rows)} rows, ${formatBytes(p.bytes)} of ${formatBytes(p.sourceBytes)}`;
}

export async function readProgress(c: pg.Client, m: Manifest): Promise<RestoreProgress> {
  const { rows } = await c.query<{ schemaname: string; relname: string; n: string }>(
    'SELECT schemaname, relname, n_tup_ins::text AS n FROM pg_stat_user_tables',
  );
  const inserted = new Map(rows.map((r) => [`${r.schemaname}.${r.relname}`, Number(r.n)]));
  let tablesDone = 0;
  let rowsDone = 0;
  let total = 0;
  for (const t of m.verification.tables) {
    const n = inserted.get(`${t.schema}.${t.table}`);
    total += t.rows;
    if (n === undefined) continue;
    rowsDone += Math.min(n, t.rows);
    if (n >= t.rows) tablesDone++;
  }
  const size = await c.query<{ b: string }>('SELECT pg_database_size(current_database())::text AS b');
  return { tablesDone, tables: m.verification.tables.length, rowsDone, rows: total, bytes: Number(size.rows[0]?.b ?? 0), sourceBytes: m.database.sizeBytes };
}

/** Reports the progress every `everyMs` until stopped; a failed read is logged and skipped, never the restore's. */
export function watchRestore(url: string, m: Manifest, everyMs: number, report: (p: RestoreProgress) => void, log: Logger): { stop(): Promise<void> } {
  let stopped = false;
  let client: pg.Client | null = null;
  const tick = async () => {
    try {
      if (!client) {
        client = new pg.Client(pgClientConfig(url));
        client.on('error', () => undefined);
        await client.connect();
      }
      const p = await readProgress(client, m);
      if (!stopped) report(p);
    } catch (err) {
      log.debug({ err }, 'restore progress not read');
    }
  };
  const timer = setInterval(() => void tick(), everyMs);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await (client as pg.Client | null)?.end().catch(() => undefined);
    },
  };
}
