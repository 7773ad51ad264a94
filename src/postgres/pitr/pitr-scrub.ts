import { rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { toUserMessage } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { errnoCode, fsyncDir } from '../../storage/fs-util.ts';
import type { ScrubState } from '../../storage/scrub.ts';
import { hashFile } from '../backup/native-pipe.ts';
import { archiveDamage, archivedBases, archivedWal, QUARANTINE } from './wal-index.ts';
import { LocalWalStore, type WalEntry } from './wal-store.ts';
import { walDecoder } from './pitr-scrub-decode.ts';
import type { AgeIdentity } from '../../crypto/age.ts';

/**
 * The checksum scrub of the point-in-time archive: stored WAL files and base backups read back against the sha256
 * their records hold, as storage/scrub.ts reads the logical backups. Without it a file that rotted on disk stays
 * inside the "recoverable window" until the day a recovery needs it. Each run reads those read longest ago, up to a
 * seventh of the archive's bytes (at least one file): run daily with retention, every file is read about once a week.
 *
 * What two more reads confirm is moved aside, never deleted: a WAL file to `<file>.damaged` beside its index entry,
 * so the window, wal-fetch and retention see it as missing (a gap: the window ends there, health's `damaged`
 * condition pages it, retention deletes entry and file with the window); a base backup's record to
 * `base.json.damaged`, so it is no longer chosen nor opens a window (its directory stays, for a look, until removed by
 * hand). Local archives only: with S3 as the primary store the bucket is not read back (docs/pitr.md).
 *
 * With `decode`, a WAL file whose sha256 matches is also decrypted and decompressed (pitr-scrub-decode.ts): a file
 * hashed as written may still have been written without its head, and only a decode finds that.
 */
export interface PitrScrubReport {
  verified: number;
  verifiedBytes: number;
  /** Files in the archives read in all, and their bytes: what one cycle covers. */
  stored: number;
  storedBytes: number;
  /** `what`: `WAL <segment>` or `base backup <id>`. */
  damaged: Array<{ target: string; what: string; why: string }>;
  unreadable: Array<{ target: string; what: string; why: string }>;
  /** Set aside by an earlier run, or indexed with their file gone: not read, still damage (the window has a gap). */
  alreadyDamaged: Array<{ target: string; what: string; why: string }>;
  /** WAL files also decrypted and decompressed whole (pitr-scrub-decode.ts); those left at their sha256, and why. */
  decoded: number;
  notDecoded: number;
  notDecodedWhy: string | null;
}

type Item = {
  target: string;
  key: string;
  what: string;
  path: string;
  bytes: number;
  sha256: string;
  since: number;
  quarantine: () => Promise<string>;
  /** A WAL file's index entry: what the decoding read needs. */
  wal?: WalEntry;
};

/** What an earlier run set aside, and WAL whose file is gone: damage still there, named without reading anything. */
async function alreadyDamaged(root: string, target: string): Promise<PitrScrubReport['alreadyDamaged']> {
  const { lost, setAside } = await archiveDamage(root, target);
  return [
    ...setAside.wal.map((n) => ({ target, what: `WAL ${n}`, why: `set aside as damaged (${QUARANTINE}): the recoverable window has a gap there` })),
    ...lost.map((n) => ({ target, what: `WAL ${n}`, why: 'indexed as archived, its file is gone: the recoverable window has a gap there' })),
    ...setAside.bases.map((id) => ({
      target,
      what: `base backup ${id}`,
      why: `its record set aside as damaged (base.json${QUARANTINE})`,
    })),
  ];
}

/** A damaged file moved aside beside itself (`<file>.damaged`), the move made durable; returns where it went. */
async function moved(from: string): Promise<string> {
  await rename(from, `${from}${QUARANTINE}`);
  await fsyncDir(join(from, '..'));
  return `${from}${QUARANTINE}`;
}

/** The archive's files that count as archived (index entry and file there; base.json there), each with how to set it aside. */
async function itemsOf(root: string, target: string): Promise<Item[]> {
  const store = new LocalWalStore(root, target);
  const [wal, bases] = await Promise.all([archivedWal(store), archivedBases(root, target)]);
  return [
    ...wal.map((e) => {
      const path = join(store.dir, e.file);
      return {
        target,
        key: `${target}/wal/${e.name}`,
        what: `WAL ${e.name}`,
        path,
        bytes: e.bytes,
        sha256: e.sha256,
        since: Date.parse(e.archivedAt),
        quarantine: () => moved(path),
        wal: e,
      };
    }),
    ...bases.map((b) => {
      const dir = join(root, target, '_base', b.id);
      const path = join(dir, b.file);
      return {
        target,
        key: `${target}/base/${b.id}`,
        what: `base backup ${b.id}`,
        path,
        bytes: b.bytes,
        sha256: b.sha256,
        since: Date.parse(b.finishedAt),
        quarantine: () => moved(join(dir, 'base.json')),
      };
    }),
  ];
}

type Verdict = { ok: true } | { damaged: string } | { unreadable: string } | { gone: true };

/** One file read back; a mismatch read twice more: damage is what three reads agree on. */
async function readBack(item: Item): Promise<Verdict> {
  const once = async (): Promise<string> => {
    const size = (await stat(item.path)).size;
    if (size !== item.bytes) return `its stored file is ${size} bytes, its record says ${item.bytes}`;
    const sha = await hashFile(item.path);
    return sha === item.sha256 ? '' : `its stored file does not match its sha256 (read ${sha.slice(0, 12)}…, recorded ${item.sha256.slice(0, 12)}…)`;
  };
  try {
    const first = await once();
    if (!first) return { ok: true };
    const reads = [first, await once(), await once()];
    return reads.every((r) => r === first)
      ? { damaged: first }
      : { unreadable: `it read differently each time (${reads.filter(Boolean).join('; ') || 'then matched'})` };
  } catch (err) {
    // Retention may have deleted it since the listing: not damage.
    if (errnoCode(err) === 'ENOENT') return { gone: true };
    return { unreadable: toUserMessage(err) };
  }
}

/** One scrub run over the local archives of `targets` (see above); `signal` stops it between files. */
export async function scrubPitrArchives(o: {
  root: string;
  targets: readonly string[];
  state: ScrubState;
  now: Date;
  log: Logger;
  signal?: AbortSignal | undefined;
  /** Every file in this run (`pg-backup-bot scrub --all`), not a seventh. */
  all?: boolean;
  /**
   * Decode WAL files too (pitr-scrub-decode.ts), with this key (undefined: none configured; a string: why it could not
   * be loaded). Absent: hashes only.
   */
  decode?: { identity: AgeIdentity | undefined | string };
}): Promise<PitrScrubReport> {
  const items = (await Promise.all(o.targets.map((t) => itemsOf(o.root, t)))).flat();
  const seen = await o.state.verifiedAt();
  const due = [...items].sort((a, b) => (seen.get(a.key) ?? a.since) - (seen.get(b.key) ?? b.since));
  const storedBytes = items.reduce((n, i) => n + i.bytes, 0);
  const budget = o.all ? Number.POSITIVE_INFINITY : Math.ceil(storedBytes / 7);
  const report: PitrScrubReport = {
    ...{ verified: 0, verifiedBytes: 0, stored: items.length, storedBytes, damaged: [], unreadable: [], alreadyDamaged: [] },
    ...{ decoded: 0, notDecoded: 0, notDecodedWhy: null },
  };
  const decoder = o.decode ? walDecoder(o.decode.identity) : null;
  let read = 0;
  for (const item of due) {
    if (o.signal?.aborted || (read > 0 && read >= budget)) break;
    // A WAL file the decoder reads once, hashes and decodes; the checksum scrub's reads judge what it did not decode
    // (skipped: no key, no zstd) and what is not the recorded bytes (three reads alike = damage).
    const decoded = item.wal && decoder ? await decoder.check(item.path, item.wal, o.signal) : null;
    const v = decoded !== null && !('skipped' in decoded) && !('mismatch' in decoded) ? decoded : await readBack(item);
    await o.state.remember(item.key, o.now.getTime()).catch((err: unknown) => o.log.warn({ err }, 'archive scrub: could not record a read in Redis'));
    if ('gone' in v) continue;
    read += item.bytes;
    if ('ok' in v || 'skipped' in v) {
      report.verified += 1;
      report.verifiedBytes += item.bytes;
    } else if ('unreadable' in v) {
      o.log.warn({ target: item.target, what: item.what, why: v.unreadable }, 'archive scrub: could not read a stored file');
      report.unreadable.push({ target: item.target, what: item.what, why: v.unreadable });
    } else {
      o.log.error({ target: item.target, what: item.what, why: v.damaged }, 'archive scrub: a stored file is damaged');
      const aside = await item.quarantine().then(
        (to) => `; moved aside as ${to}`,
        (err: unknown) => ` (it could NOT be moved aside: ${toUserMessage(err)})`,
      );
      const found = v === decoded ? `the decoding scrub found ${v.damaged}, two decodes alike` : `the checksum scrub found ${v.damaged}, three reads alike`;
      report.damaged.push({ target: item.target, what: item.what, why: `${found}${aside}` });
    }
  }
  report.alreadyDamaged = (await Promise.all(o.targets.map((t) => alreadyDamaged(o.root, t))))
    .flat()
    .filter((d) => !report.damaged.some((x) => x.target === d.target && x.what === d.what));
  if (decoder) Object.assign(report, { ...decoder.state, notDecodedWhy: decoder.state.notDecoded ? decoder.why() : null });
  if (report.notDecodedWhy) o.log.warn({ files: report.notDecoded, why: report.notDecodedWhy }, 'archive scrub: encrypted WAL not decoded');
  await o.state.keepOnly(new Set(items.map((i) => i.key))).catch((err: unknown) => o.log.warn({ err }, 'archive scrub: could not tidy its record in Redis'));
  return report;
}

/** What to do about a damaged file of the archive, for the channel and the terminal (`how`: the command to take a base backup). */
export function archiveDamageAdvice(d: { target: string; what: string }, how: string): string {
  return d.what.startsWith('WAL ')
    ? `Point-in-time recovery cannot replay past it: the recoverable window ends there until a base backup taken after it opens a new one (${how}).`
    : `No recovery starts from it any more: take a new base backup (${how}); its directory stays until deleted by hand.`;
}

/** The targets whose archive this scrub reads: every `pitr` target, unless S3 is the archive's primary store. */
export function scrubbedPitrTargets(config: { targets: ReadonlyArray<{ name: string; pitr?: unknown }> }, inS3: boolean): string[] {
  return inS3 ? [] : config.targets.filter((t) => t.pitr).map((t) => t.name);
}

/**
 * A WAL file a fetch found not matching its sha256 (pitr-restore.ts fetchWal): read twice more, and moved aside as
 * the scrub moves it when the reads agree, so the window, health (`damaged` pages it) and the next restore see the
 * gap at once, not at the next scrub (QA: a PITR test failed on a damaged segment, and the window still claimed it).
 * Returns the sentence to add; '' when the reads disagree or it could not be moved (wal-fetch may run as a user who
 * may only read the archive).
 */
export async function setAsideIfDamaged(store: LocalWalStore, entry: Pick<WalEntry, 'name' | 'file' | 'bytes' | 'sha256'>): Promise<string> {
  const path = join(store.dir, entry.file);
  const item: Item = {
    target: store.target,
    key: `${store.target}/wal/${entry.name}`,
    what: `WAL ${entry.name}`,
    path,
    bytes: entry.bytes,
    sha256: entry.sha256,
    since: 0,
    quarantine: () => moved(path),
  };
  const v = await readBack(item);
  if (!('damaged' in v)) return '';
  return item.quarantine().then(
    (to) =>
      ` Read three times alike, it was moved aside as ${to}: the recoverable window ends before it until a base backup taken after it opens a new one, and health pages it.`,
    () => '',
  );
}
