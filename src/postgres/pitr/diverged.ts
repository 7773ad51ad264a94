import { mkdir, open, readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { connectClient, pgClientConfig } from '../connection.ts';
import { parseHistory } from './lane.ts';
import { parseLsn, SEGMENT_BYTES, SEGMENT_NAME, segmentOf, segmentPosition } from './lsn.ts';

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

/**
 * The old timeline's segments being written (`.partial`) past the fork, moved aside, and pg_receivewal set to go on
 * from the fork's segment on the old timeline, from its start: the promoted server streams that timeline to the fork
 * and then the new one from that segment's start, as after any promotion. Not from an empty spool: it would start at
 * the server's current position (a slot pg_receivewal creates reserves no WAL until it first streams), and the new
 * timeline's first segment, with everything written since the fork, would never be archived (seen in the e2e test).
 * The start is a segment-sized file of zeros, as pg_receivewal pads its own. Whole segments of the old timeline from
 * the fork's on are the old primary's WAL, archived as its timeline's: while one still waits for the archiver nothing
 * is moved (`waiting`), and the refusal comes again at the next start. The partial files stay in `.diverged` for a
 * person to read (the archive holds their snapshots, as far as rpo-monitor.ts took one before the old primary went).
 */
export async function setAsideDiverged(
  spool: string,
  f: Divergence,
  /** The timeline that follows the forked one on the server (timelineAfter): asked only for a fork at a segment's start. */
  next: () => Promise<number>,
): Promise<{ moved: string[]; waiting: string[] }> {
  // A fork at a segment's very start leaves nothing of the old timeline to stream there, and pg_receivewal cannot take
  // a start at the switch itself (the server answers with the next timeline, not a stream: "could not send replication
  // command", seen in the e2e test): then it starts on the new timeline, at that segment.
  const atStart = parseLsn(f.at) % BigInt(SEGMENT_BYTES) === 0n;
  const fork = segmentOf(f.at, f.timeline);
  const forkN = segmentPosition(fork).n;
  const past = (n: string, from: number) => segmentPosition(n).timeline <= f.timeline && segmentPosition(n).n >= from;
  const names = await readdir(spool);
  const waiting = names.filter((n) => SEGMENT_NAME.test(n) && past(n, forkN));
  if (waiting.length) return { moved: [], waiting };
  const moved = names.filter((n) => /^[0-9A-F]{24}\.partial$/.test(n) && past(n, forkN + 1));
  await mkdir(join(spool, DIVERGED_DIR), { recursive: true, mode: 0o700 });
  for (const name of moved) await rename(join(spool, name), join(spool, DIVERGED_DIR, name));
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
  return { moved, waiting };
}

/** The receiver's reason for the restart, said in `/backup status` while it is counted down. */
export function divergedSentence(f: Divergence, r: { moved: readonly string[]; waiting: readonly string[] }): string {
  const head = `the promoted server left timeline ${f.timeline} at ${f.at}, before WAL the bot had received from the old primary (from ${f.asked} on: written there, never replicated)`;
  if (r.waiting.length) return `${head}; once the archiver has stored ${r.waiting.join(', ')}, streaming goes on along the new timeline`;
  const aside = r.moved.length ? `; ${r.moved.join(', ')} set aside in the spool's ${DIVERGED_DIR} directory` : '';
  return `${head}${aside}; streaming goes on along the new timeline from the fork`;
}

/**
 * The timeline that follows `forked` in the server's history, over a replication connection: IDENTIFY_SYSTEM for
 * its current timeline, and TIMELINE_HISTORY for the line after the forked one when it is not the next.
 */
export async function timelineAfter(url: string, forked: number): Promise<number> {
  const client = new pg.Client({ ...pgClientConfig(url), replication: 'true' } as pg.ClientConfig);
  client.on('error', () => undefined);
  await connectClient(client);
  try {
    const current = Number((await client.query<{ timeline: string }>('IDENTIFY_SYSTEM')).rows[0]?.timeline);
    if (current === forked + 1) return current;
    const row = (await client.query<{ content: Buffer | string }>(`TIMELINE_HISTORY ${current}`)).rows[0];
    const forks = parseHistory(String(row?.content ?? ''));
    const i = forks.findIndex((x) => x.timeline === forked);
    return forks[i + 1]?.timeline ?? current;
  } finally {
    await client.end().catch(() => undefined);
  }
}
