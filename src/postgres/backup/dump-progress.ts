import { formatBytes, formatDuration } from '../../format.ts';
import type { Manifest, Storage } from '../../storage/index.ts';

/**
 * How far a dump has come, said with a total and the time left. The total is the size pg_dump wrote for the
 * target's newest backup (a dump is not the database's size: indexes are not in it), so it is an estimate, said
 * with "~". A first backup says it against the dumped tables' size on disk (heap and TOAST, read in the snapshot
 * when the dump starts): rougher, since a row on disk and as COPY text differ in size, but a total all the same.
 */
export interface DumpEstimate {
  /** The newest earlier backup's archive size as pg_dump wrote it (raw bytes), or null. */
  expectedRawBytes: number | null;
}

export async function dumpEstimate(storage: Storage, target: string): Promise<DumpEstimate> {
  const backups = await storage.list(target).catch(() => [] as Manifest[]);
  const newest = backups.reduce<Manifest | undefined>((a, b) => (!a || b.startedAt > a.startedAt ? b : a), undefined);
  const raw = newest?.artifacts.find((a) => a.role === 'database')?.rawBytes;
  return { expectedRawBytes: raw && raw > 0 ? raw : null };
}

/**
 * "1.2 GB of ~3.4 GB read (35 %), about 2 min left"; "… of ~3.4 GB of tables on disk …" for a first backup given
 * `tablesBytes`; "1.2 GB read" with neither.
 */
export function describeDumpProgress(readBytes: number, elapsedMs: number, e: DumpEstimate, tablesBytes?: number): string {
  const byTables = e.expectedRawBytes === null && tablesBytes !== undefined && tablesBytes > 0;
  const expected = byTables ? (tablesBytes as number) : e.expectedRawBytes;
  if (expected === null) return `${formatBytes(readBytes)} read`;
  // Past the estimate: no share and no time left are promised (QA: "75.6 MB of ~6.5 MB read (99 %)").
  if (readBytes >= expected)
    return `${formatBytes(readBytes)} read, more than ${byTables ? `the ~${formatBytes(expected)} the tables take on disk` : `the last backup's ~${formatBytes(expected)}`}`;
  const share = Math.min(99, Math.floor((readBytes / expected) * 100));
  const base = `${formatBytes(readBytes)} of ~${formatBytes(expected)}${byTables ? ' of tables on disk' : ''} read (${share} %)`;
  // Too early to tell a rate: no time left is promised.
  if (readBytes <= 0 || elapsedMs < 2000) return base;
  const leftMs = ((expected - readBytes) / readBytes) * elapsedMs;
  return `${base}, about ${formatDuration(Math.max(1000, Math.round(leftMs / 1000) * 1000))} left`;
}
