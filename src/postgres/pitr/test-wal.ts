import { join } from 'node:path';
import { execa } from 'execa';
import type { AgeIdentity } from '../../crypto/age.ts';
import type { BaseBackup } from './base-backup.ts';
import type { CheckResult } from './markers.ts';
import { fetchWal } from './pitr-restore.ts';
import type { PartialWalStore } from './partial-store.ts';
import type { LocalWalStore, WalEntry } from './wal-store.ts';
import { laneOf, onLane } from './lane.ts';
import { segmentName, segmentOf, segmentPosition } from './window.ts';

export interface FetchedWal {
  /** Segments fetched, in order, from the base backup's first to the newest archived (or to the gap). */
  segments: WalEntry[];
  bytes: number;
  /** The first segment missing between the base backup's start and the newest archived one, if any. */
  gap: string | null;
  /** The segment still being written, fetched as its newest snapshot after the whole ones: how far it reaches. */
  partial: { name: string; coversAt: string } | null;
}

/**
 * For a restore test, the worker fetches the WAL itself, before the server starts: every segment from the base
 * backup's start to the newest archived one, each checked against its sha256, decrypted and decompressed into the
 * scratch cluster's `wal/` directory. The server's restore_command is then a plain copy from there: the fetch is
 * timed on its own, the whole archive tail is proven readable, and the server's user needs no key.
 */
export async function fetchWalForTest(o: {
  store: LocalWalStore;
  /** Snapshots of the segment pg_receivewal is still writing: the newest WAL, which `latest` must reach. */
  partials?: PartialWalStore | undefined;
  base: BaseBackup;
  /** The timeline recovery follows (pitr-restore.ts chooseRecovery): across a promotion, the new one. */
  timeline?: number;
  walDir: string;
  identity: AgeIdentity | undefined;
  signal?: AbortSignal | undefined;
}): Promise<FetchedWal> {
  const all = await o.store.list();
  const first = segmentPosition(segmentOf(o.base.startLsn, o.base.timeline));
  // The segments recovery reads: along the base backup's timeline, and across a promotion along the new one (lane.ts).
  const lane = laneOf(all, o.timeline ?? o.base.timeline);
  const onTimeline = all.filter((e) => !e.name.endsWith('.history') && onLane(e, lane));
  const newest = onTimeline.at(-1);
  const byN = new Map(onTimeline.map((e) => [segmentPosition(e.name).n, e]));
  const out: FetchedWal = { segments: [], bytes: 0, gap: null, partial: null };
  for (const h of all.filter((e) => e.name.endsWith('.history'))) await fetchWal(o.store, h.name, join(o.walDir, h.name), o.identity);
  const last = newest ? segmentPosition(newest.name).n : first.n - 1;
  for (let n = first.n; n <= last; n++) {
    o.signal?.throwIfAborted();
    const entry = byN.get(n);
    if (!entry) return { ...out, gap: segmentName(lane.at(n), n) };
    if (!(await fetchWal(o.store, entry.name, join(o.walDir, entry.name), o.identity))) return { ...out, gap: entry.name };
    out.segments.push(entry);
    out.bytes += entry.rawBytes;
  }
  // The segment after the newest whole one, as far as its newest snapshot reaches: the window's end, as `/backup
  // list` and restore-pitr have it. Without it the test stopped where the last whole segment ended (a quiet server
  // fills a segment in hours), and called that the latest moment.
  const next = segmentName(lane.at(Math.max(first.n, last + 1)), Math.max(first.n, last + 1));
  const partial = await o.partials?.entry(next);
  if (partial && o.partials && (await fetchWal(o.partials, next, join(o.walDir, next), o.identity))) {
    out.segments.push(partial);
    out.bytes += partial.walBytes;
    out.partial = { name: next, coversAt: partial.coversAt };
  }
  if (out.segments.length === 0) return { ...out, gap: segmentName(lane.at(first.n), first.n) };
  return out;
}

/** The PITR test's "WAL archive" check: what was fetched, along which timeline, or the gap recovery cannot cross. */
export function walCheck(wal: FetchedWal, base: BaseBackup, timeline: number): CheckResult {
  if (wal.gap) {
    const last = wal.segments.at(-1);
    return {
      name: 'WAL archive',
      ok: false,
      detail: `segment ${wal.gap} is missing from the archive${last ? ` (the last one before it, ${last.name}, holds WAL up to ${last.archivedAt})` : ''}: recovery cannot replay past it; look for it in the server's pg_wal or take a new base backup`,
    };
  }
  const across = timeline !== base.timeline ? `, across the promotion to timeline ${timeline}` : '';
  const upTo = wal.partial ? `, the last the segment still being written, as far as it reached at ${wal.partial.coversAt}` : '';
  return {
    name: 'WAL archive',
    ok: true,
    detail: `${wal.segments.length} segment(s) fetched from ${base.id}'s start on${across}, every sha256 matching${upTo}`,
  };
}

/** How far back from the newest WAL a search for the newest commit reads (64 segments: 1 GB of WAL). */
export const NEWEST_COMMIT_SEARCH = 64;

const COMMIT = /lsn: ([0-9A-F]+\/[0-9A-F]+),.*desc: COMMIT (\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))? UTC/;
const COMMIT_DESC = 'desc: COMMIT ';

/**
 * The newest commit's time in the fetched WAL, read with pg_waldump (of the cluster's major, in UTC), searching
 * from the newest segment back, with its record's LSN. Recovery to a time stops at the first commit after it: a
 * target later than the newest commit the archive holds can never be reached, so `latest` is just before it.
 */
export async function newestCommit(
  pgWaldump: string,
  walDir: string,
  segments: WalEntry[],
  signal?: AbortSignal,
): Promise<{ at: Date; lsn: string; usec: number } | null> {
  for (const seg of [...segments].reverse().slice(0, NEWEST_COMMIT_SEARCH)) {
    const last = await lastCommitIn(pgWaldump, walDir, seg.name, false, signal);
    if (last) return last;
  }
  return null;
}

/**
 * The last commit record pg_waldump reads from `segment` on: to the end of the WAL in `walDir`, or only within the
 * segment (`alone`; a record that ends in the next segment is then not read). Null when it reads no commit, or
 * cannot read the segment at all (another major's WAL).
 */
export async function lastCommitIn(
  pgWaldump: string,
  walDir: string,
  segment: string,
  alone = false,
  signal?: AbortSignal,
): Promise<{ at: Date; lsn: string; usec: number } | null> {
  // pg_waldump ends with an error at the segment's unused tail; what it printed before is what counts.
  const res = await execa(pgWaldump, ['-p', walDir, '-r', 'Transaction', segment, ...(alone ? [segment] : [])], {
    reject: false,
    stdin: 'ignore',
    env: { PATH: process.env.PATH ?? '', TZ: 'UTC' },
    extendEnv: false,
    timeout: 60_000,
    ...(signal ? { cancelSignal: signal, forceKillAfterDelay: 5_000 } : {}),
  });
  if (signal?.aborted) return null;
  // A busy segment prints some 10⁵ commit lines: only the last matching one is parsed, searched from the end.
  const out = String(res.stdout);
  for (let i = out.lastIndexOf(COMMIT_DESC); i >= 0; i = i > 0 ? out.lastIndexOf(COMMIT_DESC, i - 1) : -1) {
    const end = out.indexOf('\n', i);
    const m = COMMIT.exec(out.slice(out.lastIndexOf('\n', i) + 1, end === -1 ? undefined : end));
    if (!m) continue;
    const usec = Date.parse(`${m[2]}T${m[3]}Z`) * 1000 + Number((m[4] ?? '').padEnd(6, '0'));
    // As PostgreSQL writes it in its log and reads it back: pg_waldump's 0/04000070 is 0/4000070.
    return { lsn: (m[1] ?? '').replace(/(^|\/)0+(?=[0-9A-F])/g, '$1'), at: new Date(Math.floor(usec / 1000)), usec };
  }
  return null;
}
