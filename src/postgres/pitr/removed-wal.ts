import { readdir } from 'node:fs/promises';
import { execa } from 'execa';
import pg from 'pg';
import type { Logger } from '../../logger.ts';
import { pgClientConfig } from '../connection.ts';
import { describeExit, firstErrorLine } from '../failures.ts';
import { moveToDiverged } from './diverged.ts';
import { parseLsn, SEGMENT_NAME, segmentEndLsn } from './lsn.ts';

export const REMOVED_WAL = /requested WAL segment (\w+) has already been removed/;
const PARTIAL = /^[0-9A-F]{24}\.partial$/;

/**
 * The server no longer has the WAL the receiver asks for (its slot was dropped, or invalidated past
 * max_slot_wal_keep_size): the archive cannot go on from where it stopped, and no restart changes that (QA: the advice
 * to move the spool aside did not help, since the slot pg_receivewal recreated pointed at the same removed WAL, and
 * only dropping it did). What asks is found, then moved out of the way, one thing per failure:
 * - the spool's partial segment (pg_receivewal starts from the spool's newest file): set aside into `.diverged`
 *   (purged with the retention; its WAL is in the archive as far as a snapshot took it);
 * - completed segments still in the spool: nothing, the archive's sweep takes them within a second;
 * - the slot, with the spool holding no WAL (PostgreSQL 15 starts from its restart_lsn then): dropped, only when the
 *   server says it points at or before the removed segment, or lost it (second reader: a slot that still held WAL a
 *   stale spool did not ask for must not be dropped; that WAL would be lost with it). The next start creates it at the
 *   server's current position. The archive then has a gap, which health pages and answers with a base backup.
 */
export async function pastRemovedWal(o: {
  pgReceivewal: string;
  url: string;
  slot: string;
  spool: string;
  log: Logger;
  env: NodeJS.ProcessEnv;
  segment: string;
}): Promise<string> {
  const gone = `the server no longer has WAL segment ${o.segment}, which the archive needs next (the slot was dropped, or max_slot_wal_keep_size was exceeded): everything after the archive's last segment is a gap`;
  const names = await readdir(o.spool).catch(() => [] as string[]);
  const partials = names.filter((n) => PARTIAL.test(n));
  if (partials.length > 0) {
    await moveToDiverged(o.spool, partials, true);
    o.log.warn({ slot: o.slot, segment: o.segment, setAside: partials }, 'the server no longer has the WAL the spool asks for: its partial segment set aside');
    return `${gone}. The spool's ${partials.join(', ')} set aside, so the receiver starts again from its slot's position`;
  }
  if (names.some((n) => SEGMENT_NAME.test(n))) return `${gone}. The spool's completed segments are archived first; the receiver starts again after them`;
  const slot = await slotAt(o.url, o.slot).catch((err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }));
  const byHand = `drop it on the server (\`SELECT pg_drop_replication_slot('${o.slot}')\`) so the receiver starts again from the server's current position, then take a base backup at once`;
  if ('error' in slot) return `${gone}. The slot ${o.slot} could not be looked at (${slot.error}): if it points there, ${byHand}`;
  const pointsThere = slot.lost || slot.restartLsn === null || slot.restartLsn < segmentEndLsn(o.segment);
  if (!pointsThere) return `${gone}. The slot ${o.slot} is past it (restart_lsn ${slot.text}), so it is not what asks: look at the spool (${o.spool})`;
  const drop = await execa(o.pgReceivewal, ['--drop-slot', `--slot=${o.slot}`, '--no-password'], {
    env: o.env,
    extendEnv: false,
    stdin: 'ignore',
    reject: false,
    all: true,
  });
  if (drop.failed)
    return `${gone}. The slot ${o.slot} points there and could not be dropped (${firstErrorLine(String(drop.all ?? '')) || describeExit(drop)}): ${byHand}`;
  o.log.warn(
    { slot: o.slot, segment: o.segment, restartLsn: slot.text },
    'the slot pointed at WAL the server no longer has: dropped, to be created again at the current position',
  );
  return `${gone}. The slot ${o.slot} pointed there (restart_lsn ${slot.text}): the bot dropped it, and the receiver starts again from the server's current position. Health pages the gap and starts a base backup`;
}

/** The slot as the server has it: where it restarts, and whether its WAL is lost (wal_status, PostgreSQL 13+). */
async function slotAt(url: string, slot: string): Promise<{ restartLsn: bigint | null; text: string; lost: boolean }> {
  const client = new pg.Client({ ...pgClientConfig(url), connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ lsn: string | null; status: string | null }>(
      'SELECT restart_lsn::text AS lsn, wal_status AS status FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    const row = rows[0];
    if (!row) throw new Error(`the server has no slot ${slot}`);
    return { restartLsn: row.lsn ? parseLsn(row.lsn) : null, text: row.lsn ?? 'none', lost: row.status === 'lost' };
  } finally {
    await client.end().catch(() => undefined);
  }
}
