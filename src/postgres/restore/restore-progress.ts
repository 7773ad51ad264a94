import pg from 'pg';
import { formatBytes, formatCount } from '../../format.ts';
import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import { pgClientConfig } from '../connection.ts';

/**
 * How far a restore has come, against the totals the manifest holds (taken in the dump's snapshot): how much of
 * the archive pg_restore has read, tables whose rows are all in, rows in, and the database's size against the
 * source's. Read from the database being restored
 * into (pg_stat_user_tables counts a table's rows once its COPY has committed), so it costs pg_restore nothing.
 */
export interface RestoreProgress {
  /**
   * How far into the decompressed archive pg_restore has reached, of its size (null: not known here). With `-j`
   * a worker skips ahead to its table's block, so this is the front of the restore: it runs ahead of what is
   * loaded by at most the tables loading at once. The rows are exact.
   */
  archive: { read: number; total: number } | null;
  tablesDone: number;
  tables: number;
  rowsDone: number;
  rows: number;
  bytes: number;
  sourceBytes: number;
}

export function describeProgress(p: RestoreProgress): string {
  const archive = p.archive ? `archive reached ${formatBytes(p.archive.read)} of ${formatBytes(p.archive.total)}, ` : '';
  return `${archive}${formatCount(p.tablesDone)} of ${formatCount(p.tables)} tables, ${formatCount(p.rowsDone)} of ${formatCount(p.rows)} rows, database ${formatBytes(p.bytes)} of ${formatBytes(p.sourceBytes)}`;
}

/** Where pg_restore is in the archive: the archive's `bytesRead` and its decompressed size. */
export interface ArchiveReading {
  bytesRead(): Promise<number>;
  total: number;
}

export async function readProgress(c: pg.Client, m: Manifest, reading?: ArchiveReading): Promise<RestoreProgress> {
  const { rows } = await c.query<{ schemaname: string; relname: string; n: string }>(
    'SELECT schemaname, relname, n_tup_ins::text AS n FROM pg_stat_user_tables',
  );
  const inserted = new Map(rows.map((r) => [`${r.schemaname}.${r.relname}`, Number(r.n)]));
  // A table's COPY counts in pg_stat_user_tables only once it commits: the rows of the COPYs still running come
  // from pg_stat_progress_copy (PostgreSQL 14 and later), so a large table's rows move while it loads.
  for (const r of await copiesRunning(c)) {
    const key = `${r.nspname}.${r.relname}`;
    inserted.set(key, (inserted.get(key) ?? 0) + Number(r.n));
  }
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
  const read = reading ? await reading.bytesRead() : 0;
  // 0 read: /proc is not there, or pg_restore has not opened the file yet; either way, nothing worth saying.
  const archive = reading && read > 0 ? { read: Math.min(read, reading.total), total: reading.total } : null;
  return {
    archive,
    tablesDone,
    tables: m.verification.tables.length,
    rowsDone,
    rows: total,
    bytes: Number(size.rows[0]?.b ?? 0),
    sourceBytes: m.database.sizeBytes,
  };
}

async function copiesRunning(c: pg.Client) {
  const v = await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  if (Number(v.rows[0]?.v ?? 0) < 140000) return [];
  const { rows } = await c.query<{ nspname: string; relname: string; n: string }>(
    `SELECT n.nspname, cl.relname, p.tuples_processed::text AS n
       FROM pg_stat_progress_copy p JOIN pg_class cl ON cl.oid = p.relid JOIN pg_namespace n ON n.oid = cl.relnamespace
      WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return rows;
}

/** Reports the progress every `everyMs` until stopped; a failed read is logged and skipped, never the restore's. */
export function watchRestore(
  url: string,
  m: Manifest,
  reading: ArchiveReading | undefined,
  everyMs: number,
  report: (p: RestoreProgress) => void,
  log: Logger,
): { stop(): Promise<void> } {
  let stopped = false;
  let client: pg.Client | null = null;
  // A tick still reading when the next is due (a server busy with the restore answers slowly) lets that one pass:
  // queries would only pile up on the one connection.
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      if (!client) {
        client = new pg.Client(pgClientConfig(url));
        client.on('error', () => undefined);
        await client.connect();
      }
      const p = await readProgress(client, m, reading);
      if (!stopped) report(p);
    } catch (err) {
      log.debug({ err }, 'restore progress not read');
    } finally {
      busy = false;
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
