import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { AgeIdentity } from '../../crypto/age.ts';
import { BotError } from '../../errors.ts';
import { errnoCode, readdirIfExists } from '../../storage/fs-util.ts';
import { type BaseBackup, BaseBackupSchema } from './base-backup.ts';
import { LocalWalStore } from './wal-store.ts';
import { decodeWal } from './wal-decode.ts';
import { parseRecoveryTime } from './recovery-time.ts';

export { parseRecoveryTime };
import { setAsideIfDamaged } from './pitr-scrub.ts';
import { consistentBy, rangeAt, recoverableWindow, segmentPosition, setAsideNamed, WAL_ARRIVES, type WindowWal, windowAlong } from './window.ts';
import { gapBeforeWindow, switchedSentence } from './switched.ts';
import { baseOnLane, laneOf, onLane } from './lane.ts';

/** The base backups of a target, oldest first. */
export async function listBaseBackups(root: string, target: string): Promise<BaseBackup[]> {
  const dir = join(root, target, '_base');
  const found: BaseBackup[] = [];
  for (const id of await readdirIfExists(dir)) {
    const text = await readFile(join(dir, id, 'base.json'), 'utf8').catch(() => null);
    if (text) found.push(BaseBackupSchema.parse(JSON.parse(text)));
  }
  return found.sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt));
}

/** The timelines a window runs along, with it, for a refused --timeline: "Recoverable along timeline 1 (from … to …) and 2 (…)." */
function timelinesHeld(bases: BaseBackup[], wal: ReadonlyArray<WindowWal>): string {
  const held = [...new Set(wal.filter((e) => !e.name.endsWith('.history')).map((e) => segmentPosition(e.name).timeline))].sort((a, b) => a - b);
  const windows = held.flatMap((t) => {
    const w = windowAlong(bases, wal, t);
    return w ? [`${t} (${w.from.toISOString()} to ${w.to.toISOString()})`] : [];
  });
  const and = (xs: string[]) => (xs.length > 1 ? `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}` : (xs[0] ?? ''));
  if (windows.length > 0) return `Recoverable along timeline ${and(windows)}.`;
  return held.length
    ? `The archive holds WAL of timeline${held.length > 1 ? 's' : ''} ${and(held.map(String))}, and no window along ${held.length > 1 ? 'any of them' : 'it'}.`
    : 'The archive holds no WAL.';
}

/** How far past the window's end a time is "the WAL is on its way" (archived within seconds, 30 s at most). */
const SOON_MS = 10 * 60_000;

/**
 * The base backup to start from, the newest that finished before the time, and the timeline to recover along
 * (recovery_target_timeline: after a promotion whose history is archived, the new one, from a base backup taken
 * before it; lane.ts). A time the window does not reach (window.ts: a gap ends it, a base backup after the gap opens
 * it again) is refused with the window.
 */
export function chooseRecovery(
  bases: BaseBackup[],
  wal: ReadonlyArray<WindowWal>,
  at: Date,
  setAside: readonly string[] = [],
  now: Date = new Date(),
  /** Along this timeline alone (restore-pitr --timeline), not the window's. */
  along?: number,
): { base: BaseBackup; timeline: number } {
  const w = along === undefined ? recoverableWindow(bases, wal) : windowAlong(bases, wal, along);
  if (!w && along !== undefined)
    throw new BotError(
      'backup_not_found',
      `Nothing can be recovered along timeline ${along}: ${
        wal.some((e) => !e.name.endsWith('.history') && segmentPosition(e.name).timeline === along)
          ? 'no base backup taken on it, or on a timeline before it whose switch its archived history file records, reaches its WAL'
          : 'the archive holds no WAL of it'
      }. ${timelinesHeld(bases, wal)} Without --timeline, restore-pitr recovers along the newest timeline.`,
    );
  if (!w) {
    throw new BotError(
      'backup_not_found',
      gapBeforeWindow(bases[0]?.target ?? '', bases, wal) ??
        (bases.length === 0 && setAside.length > 0
          ? `There is no good base backup: ${setAsideNamed(setAside)} set aside as damaged by the checksum scrub, so no point in time can be recovered. Take a base backup while the WAL stream is up.`
          : `There is no base backup with WAL archived that reaches past its end yet: no point in time can be recovered. Take a base backup while the WAL stream is up; once one is taken, the window opens when WAL the server writes after it is archived (${WAL_ARRIVES}).`),
    );
  }
  const gap = w.gaps.length
    ? ` (segment ${w.gap ?? w.gaps[0]} is missing: ${w.reachesNewest ? 'the window starts after a base backup taken since' : 'it ends at that gap'})`
    : '';
  const earlier = w.earlier
    ? `, and ${w.earlier.from.toISOString()} to ${w.earlier.to.toISOString()} before the gap${w.earlier.gap ? ` at segment ${w.earlier.gap}` : ''}`
    : '';
  const prior = w.priorTimeline
    ? `, and ${w.priorTimeline.from.toISOString()} to ${w.priorTimeline.to.toISOString()} on timeline ${w.priorTimeline.timeline}, before the promotion`
    : '';
  const window = `the recoverable window is ${w.from.toISOString()} to ${w.to.toISOString()}${gap}${earlier}${prior}`;
  const range = rangeAt(w, at);
  if (!range) {
    // The logical backups reach further back (30 days, 90 for a pre-migration one) than the WAL archive (7).
    const logical = bases[0]
      ? ` For a moment outside it, a logical backup may serve: \`/backup list ${bases[0].target}\` or \`pg-backup-bot list ${bases[0].target}\`.`
      : '';
    // A time that has not come yet is said as such (QA: a day and a half ahead was told to try again in a minute).
    if (at.getTime() > now.getTime() + 60_000)
      throw new BotError(
        'bad_request',
        `${at.toISOString()} is outside what the archive holds: ${window}. It is in the future (it is ${now.toISOString()} now): ask for a moment that has passed, or for \`latest\`, the newest commit archived now.`,
      );
    // Past a timeline switch: what to do (QA). Just past a window's end: the WAL is on its way (QA: not an old dump).
    // Further past it, with no gap: nothing newer was archived, the stream is behind or down.
    const switched = w.switched && at > w.to ? switchedSentence(bases[0]?.target ?? '', w.switched) : '';
    const latest = `\`latest\` recovers to the newest commit archived now`;
    const soon = switched
      ? ` ${switched.charAt(0).toUpperCase()}${switched.slice(1)}`
      : w.reachesNewest && at > w.to && at.getTime() <= w.to.getTime() + SOON_MS
        ? ` The window grows as the WAL written since ${w.to.toISOString()} is archived (${WAL_ARRIVES}): try again in a minute, or ask for \`latest\`, the newest commit archived now.`
        : w.reachesNewest && at > w.to
          ? ` Nothing written after ${w.to.toISOString()} has been archived: the WAL stream is behind or down (\`/backup status\`, \`pg-backup-bot check\`); ${latest}.${logical}`
          : logical;
    throw new BotError('bad_request', `${at.toISOString()} is outside what the archive holds: ${window}.${soon}`);
  }
  // The newest base backup finished by then, of those from the one that opens this stretch on; that one itself when
  // the stretch starts at its end segment's archiving, a moment before the bot stamped it finished (window.ts).
  const from = bases.indexOf(range.opens);
  const lane = laneOf(wal, range.timeline);
  const read = wal.filter((e) => onLane(e, lane));
  const base = bases.filter((b, i) => i >= from && baseOnLane(b, lane) && consistentBy(b, read, at)).at(-1) ?? range.opens;
  return { base, timeline: range.timeline };
}

/** A stored WAL file read whole, its sha256 checked against the record before anything else is done with it. */
async function checkedBytes(stream: Readable, expected: { sha256: string }, what: string): Promise<Buffer> {
  const hash = createHash('sha256');
  // Read directly, not through .pipe(): a file that cannot be opened (gone, set aside) errors this loop, where it
  // is caught and said; through a pipe its 'error' event had no listener and killed wal-fetch with a stack trace (QA).
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    chunks.push(chunk as Buffer);
  }
  const stored = Buffer.concat(chunks);
  if (hash.digest('hex') !== expected.sha256) throw new BotError('storage_failed', `${what} does not match its sha256: the stored file is damaged.`);
  return stored;
}

/**
 * One archived WAL file to `dest` (restore_command's %p), checked, decrypted and decompressed (wal-decode.ts); false
 * when not archived.
 */
/**
 * An indexed WAL file whose file is gone (set aside as damaged, or lost): a gap the window already ends at, so
 * recovery planned by it never needs the file, and wal-fetch answers it as not archived (exit 1), not as a failure
 * that stops recovery (wal-fetch-cli.ts ABORT_RECOVERY).
 */
export class WalFileGone extends BotError {
  constructor(message: string) {
    super('storage_failed', message);
  }
}

export async function fetchWal(
  store: Pick<LocalWalStore, 'entry' | 'open'>,
  name: string,
  dest: string,
  identity: AgeIdentity | undefined,
  signal?: AbortSignal,
): Promise<boolean> {
  const entry = await store.entry(name);
  if (!entry) return false;
  const what = `WAL ${name}`;
  const stored = await checkedBytes(store.open(entry), entry, what).catch(async (err: unknown) => {
    if (err instanceof BotError && store instanceof LocalWalStore) {
      // Damaged on disk: set aside now, as the scrub would, so the window stops claiming it.
      throw new BotError(err.code, `${err.userMessage}${await setAsideIfDamaged(store, entry).catch(() => '')}`, { cause: err });
    }
    if (errnoCode(err) !== 'ENOENT') throw err;
    throw new WalFileGone(
      `${what} is indexed as archived, but its stored file is gone (or was set aside as damaged, by the checksum scrub or a fetch that read it three times alike): the archive has a gap here.`,
    );
  });
  await decodeWal(entry, stored, dest, identity, signal);
  return true;
}

export { layOutRecovery } from './lay-out.ts';
