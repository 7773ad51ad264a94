import { mkdir, open, readdir, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { readdirIfExists } from '../../storage/fs-util.ts';
import { connectClient, pgClientConfig } from '../connection.ts';
import { type Fork, parseHistory } from './lane.ts';
import { PARTIAL_WAL } from './partial-archiver.ts';
import { formatLsn, parseLsn, SEGMENT_BYTES, SEGMENT_NAME, segmentOf, segmentPosition, segmentStartLsn } from './lsn.ts';

/**
 * The promoted server's refusal when the spool holds WAL of the old timeline past the point where the promoted server
 * left it: the old primary wrote, and the bot received, WAL the standby never got (a crash with asynchronous
 * replication behind by a segment or more). pg_receivewal asks to go on from its newest file, and is refused at every
 * start; without a remedy the stream stays down for good.
 */
const FORKED =
  /requested starting point ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+) is not in this server's history\s*DETAIL:\s*This server's history forked from timeline (\d+) at ([0-9A-F]+\/[0-9A-F]+)/;

export interface Divergence {
  /** Where pg_receivewal asked to go on: the start of its newest file's segment. */
  asked: string;
  timeline: number;
  /** Where the promoted server left that timeline (its history file's switch point). */
  at: string;
}

export function forkedBeforeSpool(said: string): Divergence | null {
  const m = FORKED.exec(said);
  return m ? { asked: m[1] as string, timeline: Number(m[3]), at: m[4] as string } : null;
}

/** Where the old timeline's files past the fork are moved: inside the spool, where neither pg_receivewal nor the archiver looks. */
export const DIVERGED_DIR = '.diverged';

/** A segment in the spool: whole, or being written (`.partial`). */
const SPOOLED_SEGMENT = /^[0-9A-F]{24}(\.partial)?$/;

/**
 * pg_receivewal set to go on from the fork's segment, from its start, and the old timeline's segments being written
 * (`.partial`) past the fork moved aside: the promoted server streams the old timeline to the fork and then the new
 * one from that segment's start, as after any promotion. Not from an empty spool: it would start at the server's
 * current position (a slot pg_receivewal creates reserves no WAL until it first streams), and the new timeline's
 * first segment, with everything written since the fork, would never be archived (seen in the e2e test). The start
 * is a segment-sized file of zeros, as pg_receivewal pads its own, made before anything is moved (a failure between
 * must not leave an empty spool: review). Whole segments of the old timeline from the fork's on are the old primary's
 * WAL, archived as its timeline's: while one waits for the archiver (`waiting`) pg_receivewal starts after it, is
 * refused again, and this runs again; once it is archived, the start file leads. The partial files stay in
 * `.diverged` for a person to read (the archive holds their snapshots, as far as rpo-monitor.ts took one).
 */
export async function setAsideDiverged(
  spool: string,
  f: Divergence,
  /** The timeline that follows the forked one on the server (timelineAfter): asked only for a fork at a segment's start. */
  next: () => Promise<number>,
): Promise<{ moved: string[]; waiting: string[] }> {
  // A fork at a segment's very start leaves nothing of the old timeline to stream there, and pg_receivewal cannot take
  // a start at the switch itself (the server answers with the next timeline, not a stream: "could not send replication
  // command", seen in the e2e test): then it starts on the new timeline, at that segment, and the old timeline's file
  // of that segment is the old primary's alone.
  const atStart = parseLsn(f.at) % BigInt(SEGMENT_BYTES) === 0n;
  const fork = segmentOf(f.at, f.timeline);
  const forkN = segmentPosition(fork).n;
  const past = (n: string, from: number) => segmentPosition(n).timeline <= f.timeline && segmentPosition(n).n >= from;
  const start = atStart ? segmentOf(f.at, await next()) : fork;
  const fh = await open(join(spool, `${start}.partial`), 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') return null;
    throw err;
  });
  if (fh) {
    try {
      await fh.truncate(SEGMENT_BYTES);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
  const names = await readdir(spool);
  const waiting = names.filter((n) => SEGMENT_NAME.test(n) && past(n, forkN));
  const moved = names.filter((n) => n !== `${start}.partial` && PARTIAL_WAL.test(n) && past(n, atStart ? forkN : forkN + 1));
  await moveToDiverged(spool, moved);
  return { moved, waiting };
}

/**
 * Spool files moved into `.diverged`, where neither pg_receivewal nor the archiver looks, for a person to read. A name
 * set aside before (a second failover) is kept: this one gets the time appended (`stamped`: every one does). Each is
 * stamped with the time it was set aside: the purge counts from then, not from its last write (second reader: a
 * stream wedged longer than the retention would have lost it within the hour).
 */
export async function moveToDiverged(spool: string, names: readonly string[], stamped = false): Promise<void> {
  if (names.length === 0) return;
  await mkdir(join(spool, DIVERGED_DIR), { recursive: true, mode: 0o700 });
  const taken = new Set(await readdir(join(spool, DIVERGED_DIR)));
  const now = new Date();
  for (const name of names) {
    const dest = join(spool, DIVERGED_DIR, stamped || taken.has(name) ? `${name}.${now.getTime()}` : name);
    await rename(join(spool, name), dest);
    await utimes(dest, now, now);
  }
}

/**
 * Whether the spool's newest file lies at or past the point where the server left that file's timeline, by the
 * server's own history (IDENTIFY_SYSTEM, TIMELINE_HISTORY): then no start pg_receivewal asks for from there is
 * served. Past the fork the server refuses ("… is not in this server's history", in its lc_messages); exactly at it
 * (the standby stopped at a segment's start, the old primary wrote into that segment) it answers with the next
 * timeline instead of a stream, and pg_receivewal says only `could not send replication command "START_REPLICATION": `
 * (review). Asked after every failure, so neither the words nor their language decide.
 */
export async function spoolPastFork(url: string, spool: string): Promise<Divergence | null> {
  const newest = (await readdir(spool))
    .filter((n) => SPOOLED_SEGMENT.test(n))
    .sort()
    .at(-1);
  if (!newest) return null;
  const p = segmentPosition(newest);
  const startLsn = segmentStartLsn(newest.slice(0, 24));
  // A whole segment: pg_receivewal starts after it.
  const asked = newest.endsWith('.partial') ? startLsn : startLsn + BigInt(SEGMENT_BYTES);
  const f = (await serverHistory(url)).find((x) => x.timeline === p.timeline && parseLsn(x.switchLsn) <= asked);
  return f ? { asked: formatLsn(asked), timeline: f.timeline, at: f.switchLsn } : null;
}

/** The receiver's reason for the restart, said in `/backup status` while it is counted down. */
export function divergedSentence(f: Divergence, r: { moved: readonly string[]; waiting: readonly string[] }): string {
  // Exactly at the switch with nothing set aside: a whole segment of the bot's ends where the server left the timeline,
  // and pg_receivewal cannot start there; nothing of the old primary lies past it (second reader: it said there was).
  const beyond = parseLsn(f.asked) > parseLsn(f.at) || r.moved.length > 0 || r.waiting.length > 0;
  const head = beyond
    ? `the promoted server left timeline ${f.timeline} at ${f.at}, but the bot had received WAL the old primary wrote past that point (written there, never replicated)`
    : `the promoted server left timeline ${f.timeline} at ${f.at}, exactly where the WAL the bot holds of it ends`;
  if (r.waiting.length) return `${head}; once the archiver has stored ${r.waiting.join(', ')}, streaming goes on along the new timeline`;
  const aside = r.moved.length ? `; ${r.moved.join(', ')} set aside in the spool's ${DIVERGED_DIR} directory` : '';
  return `${head}${aside}; streaming goes on along the new timeline from the fork`;
}

/**
 * A replication connection to the server for a few commands (IDENTIFY_SYSTEM, TIMELINE_HISTORY), closed after. Bounded:
 * asked after every failure of the receiver, an unreachable host delays its next start by seconds only.
 */
export async function withReplication<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...pgClientConfig(url), connectionTimeoutMillis: 5000, query_timeout: 5000, replication: 'true' } as pg.ClientConfig);
  client.on('error', () => undefined);
  await connectClient(client);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A timeline's history file as the server has it (TIMELINE_HISTORY): its text. */
export async function historyText(client: pg.Client, timeline: number): Promise<string> {
  return String((await client.query<{ content: Buffer | string }>(`TIMELINE_HISTORY ${Math.trunc(timeline)}`)).rows[0]?.content ?? '');
}

/** The server's current timeline and its history's lines, over a replication connection (IDENTIFY_SYSTEM, TIMELINE_HISTORY). */
function serverHistory(url: string): Promise<Fork[] & { current?: number }> {
  return withReplication(url, async (client) => {
    const current = Number((await client.query<{ timeline: string }>('IDENTIFY_SYSTEM')).rows[0]?.timeline);
    const forks: Fork[] & { current?: number } = current > 1 ? parseHistory(await historyText(client, current)) : [];
    forks.current = current;
    return forks;
  });
}

/** The timeline that follows `forked` in the server's history: the line after it, or the current one. */
export async function timelineAfter(url: string, forked: number): Promise<number> {
  const forks = await serverHistory(url);
  const i = forks.findIndex((x) => x.timeline === forked);
  return (i === -1 ? undefined : forks[i + 1]?.timeline) ?? (forks.current as number);
}

/**
 * What failovers leave in the spool for good, removed once older than the WAL's retention days (the moments they hold
 * have as a rule left the window by then; the archive keeps its own snapshots of them, as long as it keeps WAL there):
 * the files set aside in `.diverged` (counted from when they were set aside), and the `.partial` of an older timeline
 * than the spool's newest file, which pg_receivewal closes at a switch and never opens again (16 MB each, per
 * failover; counted from its last write). Returns the names removed.
 */
export async function purgeLeftovers(spool: string, keepMs: number, now: Date): Promise<string[]> {
  const old = async (path: string) => (await stat(path).catch(() => null))?.mtime.getTime() ?? Number.POSITIVE_INFINITY;
  const cutoff = now.getTime() - keepMs;
  const names = await readdirIfExists(spool);
  const wal = names.filter((n) => SPOOLED_SEGMENT.test(n));
  const newest = Math.max(0, ...wal.map((n) => segmentPosition(n).timeline));
  const removed: string[] = [];
  for (const n of wal.filter((x) => x.endsWith('.partial') && segmentPosition(x).timeline < newest)) {
    if ((await old(join(spool, n))) < cutoff && (await unlinkIfThere(join(spool, n)))) removed.push(n);
  }
  const aside = await readdirIfExists(join(spool, DIVERGED_DIR));
  for (const n of aside) {
    if ((await old(join(spool, DIVERGED_DIR, n))) < cutoff && (await unlinkIfThere(join(spool, DIVERGED_DIR, n)))) removed.push(`${DIVERGED_DIR}/${n}`);
  }
  return removed;
}

const unlinkIfThere = (path: string) =>
  unlink(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
