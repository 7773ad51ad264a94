import type { Archive, PgRestoreRun } from './archive.ts';

/**
 * How pg_restore runs our archives, and why (measured here: PostgreSQL 15.20, 2 cores, a 1.2 GB database whose
 * archive is 758 MB raw, written like ours by `pg_dump -Fc -Z0 | zstd`):
 *
 * 1. `-j` works from a seekable file even though an archive written to a pipe has no data offsets: pg_restore
 *    15 scans forward for a block without an offset and remembers the positions it passes
 *    (pg_backup_custom.c, `_PrintTocData`); each worker reopens the file. From stdin `-j` is refused ("parallel
 *    restore from standard input is not supported"). Times: `-j 2` from the file 9.0–11.6 s (+1.4 s to
 *    decompress), one job from the file 14.6–14.8 s, `zstd -dc | pg_restore` 13.8–18.0 s.
 *
 * 2. But one `-j` pass is NOT safe on such an archive. Without offsets pg_restore knows no data sizes
 *    (`_PrepParallelRestore` leaves dataLength 0), so its scheduler no longer starts the data loads before the
 *    zero-size post-data items; and a post-data item that depends on a partitioned table (no TABLE DATA of its
 *    own, so its dependency is never re-pointed to data) becomes runnable at once. A trigger on a partitioned
 *    table was created before its partitions' COPY and fired for every restored row — 4 runs out of 4 with
 *    `-j 2` on a pipe-written archive, 0 out of 3 on the same database dumped with `-f` (offsets present).
 *    The realistic schema's `orders_log` trigger hit the same race in a `-L` restore.
 *
 * So with more than one job we restore in two passes: pre-data + data with `-j`, then post-data with `-j`.
 * Every row is in before any index, constraint or trigger exists, exactly as in a single-job restore, and the
 * cost is small: 9.0–10.5 s for the two passes against 9.0–9.8 s for one (same database, `-j 2`).
 */
export async function runPgRestorePasses(archive: Archive, args: string[], jobs: number, env: Record<string, string>): Promise<PgRestoreRun> {
  if (jobs <= 1) return archive.pgRestore(args, { env });
  const parallel = [...args, `--jobs=${jobs}`];
  const first = await archive.pgRestore([...parallel, '--section=pre-data', '--section=data'], { env });
  if (!first.ok || first.canceled) return first;
  return archive.pgRestore([...parallel, '--section=post-data'], { env });
}
