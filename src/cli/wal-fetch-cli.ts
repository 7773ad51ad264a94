import { fileURLToPath } from 'node:url';
import { loadIdentity } from '../crypto/age.ts';
import { toUserMessage } from '../errors.ts';
import { SEGMENT_NAME, segmentPosition } from '../postgres/pitr/lsn.ts';
import { PartialWalStore } from '../postgres/pitr/partial-store.ts';
import { READER_TTL_MS, renewPitrReservation } from '../postgres/pitr/pitr-readers.ts';
import { fetchWal, WalFileGone } from '../postgres/pitr/pitr-restore.ts';
import { dataDirOfPrefetch, notePrefetchTaken, prefetchDepth, recoveryEnded, runPrefetch, startPrefetch } from '../postgres/pitr/wal-prefetch.ts';
import { LocalWalStore } from '../postgres/pitr/wal-store.ts';

/**
 * restore_command's half of restore-pitr, run by the recovering server once per WAL file it asks for. It reads the
 * two variables restore-pitr writes into the command itself (BACKUP_DIR, BACKUP_ENCRYPTION_IDENTITY_FILE), and
 * PGBB_WAL_PREFETCH: no config file, whose targets' variables the server would not have. Loaded by wal-main.ts, not main.ts, so a start
 * pays for nothing else (bench:pitr: the start of recovery waited on it).
 */
export interface WalVerbDeps {
  backupDir: string;
  identityFile: string | undefined;
  io: { out(l: string): void; err(l: string): void };
}

/** Both verbs' arguments, `<target> <a> <b> [--reader=TOKEN]`; null, with the usage said, when they are not that. */
function walArgs(args: string[], usage: string, io: WalVerbDeps['io']): { targetName: string; args: [string, string]; token: string | undefined } | null {
  const [targetName, a, b, reader] = args;
  const token = reader?.startsWith('--reader=') ? reader.slice('--reader='.length) : undefined;
  if (targetName && a && b && args.length <= 4 && (reader === undefined || token)) return { targetName, args: [a, b], token };
  io.err(`usage: pg-backup-bot ${usage}`);
  return null;
}

/**
 * wal-fetch's exit when a file cannot be served and an older timeline holds a segment of its number, and when the
 * restore_command itself is wrong: above 125, which PostgreSQL takes as "abort recovery" (xlogarchive.c,
 * wait_result_is_any_signal). Any other failure means "not archived" to it, and it tries the older timeline's
 * segment of that number. QA: a timeline-2 snapshot that could not be read made recovery take timeline 1's segment
 * instead, replay the old primary's writes past the fork, and promote: "archive recovery complete", the wrong history.
 */
export const ABORT_RECOVERY = 126;

/** `pg-backup-bot wal-fetch <target> <file> <dest>`: restore_command's half; exit 1 when the file is not archived. */
export async function cliWalFetch(args: string[], deps: WalVerbDeps): Promise<number> {
  const parsed = walArgs(args, 'wal-fetch <target> <wal-file> <destination> [--reader=TOKEN]', deps.io);
  if (!parsed) return ABORT_RECOVERY;
  const { targetName, token } = parsed;
  const [name, dest] = parsed.args;
  // The recovery is still reading: restore-pitr's hold on the base backup and its WAL lasts another day. Renewed
  // first, beside everything else, and awaited on every path: the process exits right after, and a write cut short
  // would leave its temp file.
  const renewed = token ? renewPitrReservation(deps.backupDir, targetName, token, READER_TTL_MS).catch(() => false) : undefined;
  try {
    const store = new LocalWalStore(deps.backupDir, targetName);
    // A whole segment archived: the next ones are read ahead from here on, by one detached process per data directory
    // (wal-prefetch.ts). Started before this fetch, so that its own start (a Node process) runs beside it: recovery
    // asks for the next segment as soon as it has replayed this one (bench:pitr's log: 0.6 s waited there).
    if (SEGMENT_NAME.test(name) && (await store.entry(name))) {
      const bin = fileURLToPath(new URL('../../bin/pg-backup-bot.js', import.meta.url));
      await startPrefetch({ bin, target: targetName, name, dest, env: process.env, reader: token }).catch(() => undefined);
    }
    const identity = deps.identityFile ? await loadIdentity(deps.identityFile, 'wal-fetch needs it to decrypt the archived WAL') : undefined;
    // Not archived is not an error: recovery asks for the next file until there is none. A segment not archived
    // whole is served from its newest partial snapshot, padded to 16 MB, which PostgreSQL replays to its end.
    const once = async () =>
      (await fetchWal(store, name, dest, identity)) ||
      (SEGMENT_NAME.test(name) && (await fetchWal(new PartialWalStore(deps.backupDir, targetName), name, dest, identity)));
    // A file gone between its entry and its read (a snapshot superseded, the whole segment archived meanwhile): once more.
    const fetched = await once().catch((err: unknown) => (err instanceof WalFileGone ? once() : Promise.reject(err)));
    if (!fetched) return 1;
    // What recovery took, for the reader ahead; after a partial snapshot (the newest WAL there is) nothing follows.
    await notePrefetchTaken(dest, name);
    return 0;
  } catch (err) {
    // Exit 1 makes PostgreSQL try the segment of that number on an older timeline: the wrong history when the archive
    // holds one (QA: a timeline-2 snapshot that could not be read, timeline 1's taken instead). Without one, 1 is safe:
    // recovery stops there, and PostgreSQL refuses to end short of its target ("recovery ended before configured
    // recovery target was reached"); a gap the window already ends at is never needed (CI: PostgreSQL asks anyway).
    if (!(await olderTimelineHas(deps.backupDir, targetName, name))) {
      deps.io.err(
        `wal-fetch of ${name} FAILED: ${toUserMessage(err)} (answered as not archived: no older timeline holds it, so recovery cannot take another in its place)`,
      );
      return 1;
    }
    deps.io.err(
      `wal-fetch of ${name} FAILED, recovery stops here (exit ${ABORT_RECOVERY}: an older timeline holds a segment of that number, which recovery would take instead): ${toUserMessage(err)}`,
    );
    return ABORT_RECOVERY;
  } finally {
    await renewed;
  }
}

/** Whether the archive holds the segment of `name`'s number on a timeline before `name`'s, whole or as a snapshot. */
async function olderTimelineHas(root: string, target: string, name: string): Promise<boolean> {
  if (!SEGMENT_NAME.test(name)) return false;
  const asked = segmentPosition(name);
  const older = (n: string) => {
    if (!SEGMENT_NAME.test(n)) return false;
    const p = segmentPosition(n);
    return p.n === asked.n && p.timeline < asked.timeline;
  };
  const [whole, partial] = await Promise.all([
    new LocalWalStore(root, target).list().catch(() => []),
    new PartialWalStore(root, target).list().catch(() => []),
  ]);
  return [...whole, ...partial].some((e) => older(e.name));
}

/** `pg-backup-bot wal-prefetch <target> <after> <dir>`: started by wal-fetch, never by hand (wal-prefetch.ts). */
export async function cliWalPrefetch(args: string[], deps: WalVerbDeps): Promise<number> {
  const parsed = walArgs(args, 'wal-prefetch <target> <segment> <directory> [--reader=TOKEN] (started by wal-fetch)', deps.io);
  if (!parsed) return 2;
  const { targetName, token } = parsed;
  const [after, dir] = parsed.args;
  const identity = deps.identityFile ? await loadIdentity(deps.identityFile, 'wal-fetch needs it to decrypt the archived WAL') : undefined;
  const { backupDir } = deps;
  await runPrefetch({
    store: new LocalWalStore(backupDir, targetName),
    identity,
    dir,
    after,
    depth: prefetchDepth(process.env),
    recoveryOver: () => recoveryEnded(dataDirOfPrefetch(dir)),
    ...(token ? { renew: () => renewPitrReservation(backupDir, targetName, token, READER_TTL_MS) } : {}),
  });
  return 0;
}
