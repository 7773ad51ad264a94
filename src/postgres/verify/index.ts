import type { Logger } from '../../logger.ts';
import type { Manifest } from '../../storage/index.ts';
import type { Archive } from '../restore/archive.ts';
import { withMaintenanceClient } from '../restore/scratch.ts';
import { dumpMajor } from '../restore/stored-archive.ts';
import { type Amcheck, runAmcheck } from './amcheck.ts';
import { compareEntries, type EntryComparison } from './compare-entries.ts';
import { archiveEntries, restoredEntries } from './render.ts';

/**
 * How deeply a restore test checks the restored copy (a target's `verify`):
 * - `counts`: rows per table and objects per kind, against the counts the backup took in its snapshot;
 * - `content` (default): also every table's rows, every definition and every large object, against the archive,
 *   and pg_amcheck (heap and btree);
 * - `full`: also pg_amcheck's `--heapallindexed`.
 */
export type VerifyLevel = 'counts' | 'content' | 'full';
export const VERIFY_LEVELS: readonly VerifyLevel[] = ['counts', 'content', 'full'];

/** What the comparison with the archive found; `compared: false` says why it could not run, and nothing is claimed. */
export type ArchiveComparison = { compared: false; why: string; ms: number } | ({ compared: true; ms: number } & EntryComparison);

/** Everything a restore test checked beyond the counts, at its level. */
export interface DeepCheck {
  level: VerifyLevel;
  archive: ArchiveComparison;
  amcheck: Amcheck;
}

export interface VerifyOptions {
  archive: Archive;
  manifest: Manifest;
  /** The restored copy: its URL and its name on the server. */
  url: string;
  database: string;
  /** The pg_dump (and its major) matched to the archive: the restored copy is rendered by the same code. */
  pgDump: string;
  pgDumpMajor: number;
  /** The restore kept owners and grants, so they are compared too. */
  owners: boolean;
  signal?: AbortSignal | undefined;
  log: Logger;
}

/**
 * Compares a restored copy with the archive it came from, entry by entry as pg_dump renders both (the archive
 * with `pg_restore -f -`, the copy with `pg_dump`): each table's rows, each definition, each large object, the
 * database's own properties. Nothing is read from the source database. Run it before anything writes to the copy.
 */
export async function compareWithArchive(o: VerifyOptions): Promise<ArchiveComparison> {
  const started = Date.now();
  const why = await incomparable(o);
  if (why) return { compared: false, why, ms: Date.now() - started };
  const [archive, restored] = await Promise.all([
    archiveEntries(o.archive, { database: o.manifest.database.name, owners: o.owners }),
    restoredEntries(o.url, o.database, { pgDump: o.pgDump, owners: o.owners, timeZone: o.manifest.database.dumpTimeZone, signal: o.signal }),
  ]);
  const c = compareEntries(archive.entries, restored.entries);
  const ms = Date.now() - started;
  o.log.info({ ...c, differences: c.differences.length, ms }, 'restored copy compared with its archive');
  return { compared: true, ...c, ms };
}

/** Why the two renderings would differ for reasons that are not the backup's; null when they are comparable. */
async function incomparable(o: VerifyOptions): Promise<string | null> {
  const dumped = dumpMajor(o.manifest);
  if (dumped !== o.pgDumpMajor) return `the backup was written by pg_dump ${dumped} and only pg_dump ${o.pgDumpMajor} is here to read the copy back`;
  const server = await serverMajor(o.url);
  if (server !== dumped)
    return `the copy is on PostgreSQL ${server} and the backup came from PostgreSQL ${dumped}, whose pg_dump writes some values and definitions differently`;
  if (o.manifest.database.dumpTimeZone === undefined)
    return 'the backup predates content fingerprints (its pg_dump ran in the server’s time zone, which a copy may not share)';
  return null;
}

const serverMajor = (url: string) =>
  withMaintenanceClient(url, async (c) => {
    const { rows } = await c.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    return Math.floor(Number(rows[0]?.v ?? 0) / 10000);
  });

/** pg_amcheck on the copy at the level's depth (`full`: with `--heapallindexed`). */
export function amcheckRestored(o: VerifyOptions & { level: Exclude<VerifyLevel, 'counts'>; keep: boolean }): Promise<Amcheck> {
  return runAmcheck(o.url, o.database, { pgDump: o.pgDump, major: o.pgDumpMajor, heapallindexed: o.level === 'full', keep: o.keep, signal: o.signal });
}

/** The problems a deep check adds to a verdict: every difference and every corruption found. */
export function deepProblems(d: DeepCheck | null): string[] {
  if (!d) return [];
  return [...(d.archive.compared ? d.archive.differences : []), ...(d.amcheck.ran ? d.amcheck.corruption : [])];
}

/** The record's account of a deep check (restore-record.ts `checked`), without the differences themselves. */
export function deepRecord(d: DeepCheck | null) {
  if (!d) return { level: 'counts' as const };
  const a = d.archive;
  return {
    level: d.level,
    archive: a.compared
      ? {
          compared: true,
          tables: a.tables,
          definitions: a.definitions,
          largeObjects: a.largeObjects,
          differing: a.differing,
        }
      : { compared: false, why: a.why },
    amcheck: d.amcheck.ran
      ? { ran: true, corrupt: d.amcheck.corruption.length, heapallindexed: d.level === 'full' }
      : { ran: false, why: d.amcheck.why, heapallindexed: d.level === 'full' },
  };
}
