import pg from 'pg';
import type { Config } from '../config.ts';
import { toUserMessage } from '../errors.ts';
import { pgClientConfig } from '../postgres/connection.ts';
import { recoverableWal } from '../postgres/pitr/partial-store.ts';
import { listBaseBackups } from '../postgres/pitr/pitr-restore.ts';
import { takeBaseBackup } from '../postgres/pitr/take-base-backup.ts';
import { recoverableWindow } from '../postgres/pitr/window.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function query<T extends pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client(pgClientConfig(url));
  await c.connect();
  try {
    return (await c.query<T>(sql, values)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * The demo's point-in-time recovery, ready before the prompt: once the workers' WAL stream holds its slot, a base
 * backup is taken, one row written and the segment switched, and the bot waits until the recoverable window opens
 * (that segment archived, or, when the server wrote past it first, a snapshot after it: segment-time.ts). Then
 * `/restore-test pitr` has a window to test at once. Returns a line for the demo to print.
 */
export async function prepareDemoPitr(config: Config, timeoutMs = 60_000): Promise<string> {
  const target = config.targets.find((t) => t.pitr);
  if (!target?.pitr) return 'Point-in-time recovery is off in this demo.';
  const end = Date.now() + timeoutMs;
  // The base backup's first segment must be in the archive: pg_receivewal must be streaming before it starts.
  while (!(await query<{ a: boolean }>(target.url, 'SELECT active AS a FROM pg_replication_slots WHERE slot_name = $1', [target.pitr.slot]))[0]?.a) {
    if (Date.now() > end) return 'Point-in-time recovery: the WAL stream did not start (see the log above); `/restore-test pitr` will say why.';
    await sleep(200);
  }
  // The same base backup as `/backup now --physical` and the CLI take (refusals, tools, read-back).
  const base = await takeBaseBackup(config, target).catch((err: unknown) => err as Error);
  if (base instanceof Error) return `Point-in-time recovery: no base backup to test (${toUserMessage(base)}).`;
  await query(target.url, 'CREATE TABLE IF NOT EXISTS demo_pitr_note (at timestamptz DEFAULT clock_timestamp()); INSERT INTO demo_pitr_note DEFAULT VALUES');
  // The row's commit is the moment `/restore-test pitr` recovers to: its segment must be archived whole, not only the
  // base backup's end (the window opens at the latter, and a test run at once found no commit after the base backup).
  const seg = (await query<{ seg: string }>(target.url, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS seg'))[0]?.seg ?? '';
  await query(target.url, 'SELECT pg_switch_wal()');
  const opened = async () => {
    const wal = await recoverableWal(config.backupDir, target.name);
    return (
      wal.some((w) => !('partial' in w && w.partial) && w.name.slice(8) >= seg.slice(8)) &&
      recoverableWindow(await listBaseBackups(config.backupDir, target.name), wal)
    );
  };
  while (!(await opened())) {
    if (Date.now() > end) return `Point-in-time recovery: base backup ${base.id} taken, but no WAL after it is archived yet.`;
    await sleep(200);
  }
  return `Point-in-time recovery is on: WAL streams into ${config.backupDir}/${target.name}/_wal, base backup ${base.id} taken, markers every ${target.pitr.markers ? target.pitr.markers.everySeconds : '—'} s. Try /restore-test pitr.`;
}
