import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgeIdentity } from '../../crypto/age.ts';
import type { BaseBackup } from './base-backup.ts';
import { fetchWal } from './pitr-restore.ts';
import { PartialWalStore, recoverableWal } from './partial-store.ts';
import { laneOf, onLane } from './lane.ts';
import { parseLsn } from './lsn.ts';
import { parsePgDumpVersion } from '../tools.ts';
import { clusterTool, serverBinDir } from './scratch-cluster.ts';
import { NEWEST_COMMIT_SEARCH, newestCommit } from './test-wal.ts';
import { LocalWalStore } from './wal-store.ts';
import { segmentOf, segmentPosition } from './window.ts';

/** `at` to the millisecond (rounded down); `usec`, microseconds since the epoch as pg_waldump wrote it. */
export type NewestCommit = { at: Date; lsn: string; usec: number };

/** pg_waldump of a laid-out cluster's major, or null when that major's server tools are not installed here. */
export const waldumpOf = (dataDir: string): Promise<string | null> => clusterTool(dataDir, 'pg_waldump');

/**
 * pg_waldump of the major pg_basebackup reported (`pg_basebackup (PostgreSQL) 15.20`), known before the base backup
 * is unpacked, so the newest commit is read while the unpack runs; null when not installed. The bot takes base
 * backups with the server's own major, so this is the cluster's; the caller checks against PG_VERSION once laid out.
 */
export async function waldumpGuess(base: BaseBackup): Promise<string | null> {
  const major = parsePgDumpVersion(base.pgBasebackupVersion);
  if (major === null) return null;
  return serverBinDir(major)
    .then((bin) => join(bin, 'pg_waldump'))
    .catch(() => null);
}

/**
 * The newest commit the archive holds along the timeline recovery follows after the base backup's start, searched from the newest WAL
 * back (the segment still being written first, as far as its newest snapshot reaches), one segment at a time, each
 * checked, decrypted and read with pg_waldump in a private directory that is removed again.
 * - that commit's time and its record's LSN. Recovery to a time stops at the first commit after it, so a time at or after this one
 *   is never "reached" (PostgreSQL ends with "recovery ended before configured recovery target was reached"), though
 *   the database at that time is exactly what the archive ends with;
 * - null: no commit after the base backup's end (its consistent point);
 * - undefined: not known (none in the newest NEWEST_COMMIT_SEARCH segments, or pg_waldump could not read them).
 */
export async function newestArchivedCommit(o: {
  root: string;
  target: string;
  base: BaseBackup;
  /** The timeline recovery follows (chooseRecovery): the base backup's own when absent. */
  timeline?: number;
  /** pg_waldump of the cluster's major: known once the base backup is laid out, while the newest WAL is fetched. */
  pgWaldump: Promise<string | null>;
  identity: AgeIdentity | undefined;
  /** Stops the search and its tools (restore-pitr canceled): the answer is then undefined. */
  signal?: AbortSignal | undefined;
}): Promise<NewestCommit | null | undefined> {
  const first = segmentPosition(segmentOf(o.base.startLsn, o.base.timeline));
  const archived = await recoverableWal(o.root, o.target);
  // Along the timeline recovery follows: across a promotion, the new timeline's WAL after the switch (lane.ts).
  const lane = laneOf(archived, o.timeline ?? o.base.timeline);
  const after = archived.filter((e) => !e.name.endsWith('.history') && onLane(e, lane) && segmentPosition(e.name).n >= first.n);
  // Only as far as recovery from this base backup can replay: up to the first gap (a segment lost or set aside by
  // the checksum scrub). A commit beyond it cannot be reached; aiming at it ended in "recovery ended before
  // configured recovery target was reached" (QA).
  const gapAt = after.findIndex((e, i) => segmentPosition(e.name).n !== first.n + i);
  const wal = gapAt === -1 ? after : after.slice(0, gapAt);
  const whole = new LocalWalStore(o.root, o.target);
  const partials = new PartialWalStore(o.root, o.target);
  const dir = await mkdtemp(join(tmpdir(), 'pgbb-last-commit-'));
  try {
    const searched = wal.slice(-NEWEST_COMMIT_SEARCH).reverse();
    let newer: string | undefined;
    for (const entry of searched) {
      const store = 'partial' in entry ? partials : whole;
      if (o.signal?.aborted || !(await fetchWal(store, entry.name, join(dir, entry.name), o.identity, o.signal))) return undefined;
      const pgWaldump = await o.pgWaldump;
      if (!pgWaldump) return undefined;
      // The newer segment stays beside it: a commit record that starts here and ends there is read whole.
      const found = await newestCommit(pgWaldump, dir, [entry], o.signal);
      if (o.signal?.aborted) return undefined;
      // The newest commit of all, found before the base backup's end: none came after it (a target at an LSN before
      // the consistent point would stop the server: "requested recovery stop point is before consistent recovery point").
      if (found) return parseLsn(found.lsn) >= parseLsn(o.base.endLsn) ? found : null;
      if (newer) await rm(join(dir, newer), { force: true });
      newer = entry.name;
    }
    return searched.length === wal.length ? null : undefined;
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What restore-pitr set the cluster to recover to, and what its log then says when it got there. */
export interface SettledTarget {
  /** The sentence for the person at the terminal. */
  said: string;
  /** The log line that proves the target was reached. */
  logSays: string;
  /** What "recovery ended before configured recovery target was reached" would mean for this target. */
  notReached: string;
  /** No target set (the newest commit could not be read): recovery runs to the end and promotes, whatever the action. */
  toEnd?: true;
}

const FETCH_FAILED = 'means WAL the target needs could not be fetched (see the wal-fetch lines before it): the recovery is incomplete';

/**
 * After layOutRecovery: a time no commit in the archive follows can never be "reached" (PostgreSQL replays to the end,
 * then fails with "recovery ended before configured recovery target was reached"), though the database at that time
 * is what the archive ends with. Such a time, and `latest` (at null), become the newest commit's LSN (inclusive:
 * recovery stops right after it, and the action at the target still applies), or the base backup's own consistent
 * point when nothing was committed after it. When the newest commit cannot be read, the time stays as asked.
 */
export async function settleRecoveryTarget(o: {
  base: BaseBackup;
  dataDir: string;
  at: Date | null;
  /** newestArchivedCommit's answer. */
  newest: NewestCommit | null | undefined;
  /** Whether pg_waldump of the cluster's major was there to read it. */
  pgWaldump: boolean;
}): Promise<SettledTarget> {
  const { newest, pgWaldump } = o;
  const iso = (d: Date) => d.toISOString();
  // Compared to the microsecond: a commit at .577072 is after a target of .577 (QA: rounded to .577, it was not, and
  // recovery to its LSN included a commit made after the time asked for).
  const after = (c: NewestCommit, t: Date) => c.usec > t.getTime() * 1000;
  if (o.at && (newest === undefined || (newest !== null && after(newest, o.at)))) {
    const unknown =
      newest === undefined
        ? ` (the archive's newest commit could not be read${pgWaldump ? '' : ': no pg_waldump of this major'}; if the log ends with "recovery ended before configured recovery target was reached", nothing was committed after ${iso(o.at)}: lay it out again with --time=latest)`
        : '';
    return {
      said: `It recovers to ${iso(o.at)}${unknown}.`,
      logSays: `"recovery stopping before commit of transaction …, time ${iso(o.at).slice(0, 10)} …"`,
      notReached:
        newest === undefined
          ? `means either that nothing was committed after ${iso(o.at)} (lay it out again with --time=latest) or that WAL it needs could not be fetched (see the wal-fetch lines before it)`
          : FETCH_FAILED,
    };
  }
  const why = o.at ? `No commit in the archive follows ${iso(o.at)}, so PostgreSQL could never stop "at" it: ` : '';
  // After `why`, or as a sentence of its own (latest: QA read "…at the target. it recovers to …").
  const lead = (rest: string) => (why ? `${why}${rest}` : `${rest.charAt(0).toUpperCase()}${rest.slice(1)}`);
  if (newest === undefined) {
    await setTarget(o.dataDir, null);
    return {
      said: lead(
        `it recovers to the end of the archive (its newest commit could not be read${pgWaldump ? '' : ': no pg_waldump of this major'}), and promotes there whatever --action says.`,
      ),
      logSays: '"archive recovery complete"',
      notReached: FETCH_FAILED,
      toEnd: true,
    };
  }
  if (newest === null) {
    await setTarget(o.dataDir, "recovery_target = 'immediate'");
    return {
      said: lead(`nothing was committed after base backup ${o.base.id}: it recovers to the end of that base backup, which holds the same data.`),
      logSays: '"recovery stopping after reaching consistency"',
      notReached: FETCH_FAILED,
    };
  }
  await setTarget(o.dataDir, `recovery_target_lsn = '${newest.lsn}'`);
  // To the microsecond, as PostgreSQL stamps it: .198Z read as before a commit at .198275 (QA).
  const micro = `${iso(newest.at).slice(0, 23)}${String(newest.usec % 1000).padStart(3, '0')}Z`;
  return {
    said: lead(
      `it recovers to the archive's newest commit, at ${micro} (LSN ${newest.lsn}), which holds exactly what the database held${o.at ? ` at ${iso(o.at)}` : ''}.`,
    ),
    logSays: `"recovery stopping after WAL location (LSN) \\"${newest.lsn}\\""`,
    notReached: FETCH_FAILED,
  };
}

/** The recovery_target_time line layOutRecovery wrote, replaced (or, with null, removed: recover to the end). */
async function setTarget(dataDir: string, line: string | null): Promise<void> {
  const conf = join(dataDir, 'postgresql.auto.conf');
  const text = await readFile(conf, 'utf8');
  await writeFile(conf, text.replace(/^recovery_target_time = .*\n/m, line === null ? '' : `${line}\n`));
}
