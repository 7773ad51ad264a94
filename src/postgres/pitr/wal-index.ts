import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode, exists, readdirIfExists } from '../../storage/fs-util.ts';
import { type BaseBackup, BaseBackupSchema } from './base-backup.ts';
import { LocalWalStore, type WalEntry } from './wal-store.ts';

/**
 * The WAL index and the base backups of a target, read cheaply enough for every `/backup status`, `/backup list`,
 * `/backup health`, App Home view and /metrics scrape. An index entry is written once (tmp + rename) and never
 * changed (history entries aside: they may gain their record, and are read every time), so a listing parses only the
 * entries it has not seen; and while the `_wal` directory's mtime is the one
 * of the last listing, the listing itself is reused. A directory modified within the last two seconds is listed
 * again next time whatever its mtime says: a file added in the same clock tick as the listing leaves the mtime as
 * it was (coarse file-system timestamps), and would otherwise stay unseen.
 */
interface WalListing {
  mtimeNs: bigint;
  racy: boolean;
  entries: Map<string, WalEntry>;
  list: WalEntry[];
  /** Indexed, file gone (lostWal). */
  lost: string[];
  /** Indexed, file moved aside by the checksum scrub (pitr-scrub.ts): damaged, not lost. */
  setAside: string[];
}

/** What the checksum scrub appends to a damaged file's name (pitr-scrub.ts): kept, but no longer archived. */
export const QUARANTINE = '.damaged';

const RACY_MS = 2000;
/** Index entries parsed at once on a first listing (a week of WAL can be thousands of files). */
const BATCH = 64;
const walListings = new Map<string, WalListing>();
const baseRecords = new Map<string, { sig: string; record: BaseBackup }>();

const byName = (a: WalEntry, b: WalEntry) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Every archived WAL file whose index entry and stored file are both there, in name order. An entry whose file is
 * gone (removed from storage by hand, a disk error) is left out: recovery could not fetch it, so it is a gap.
 */
export async function archivedWal(store: LocalWalStore): Promise<WalEntry[]> {
  const st = await stat(store.dir, { bigint: true }).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  });
  if (!st) {
    walListings.delete(store.dir);
    return [];
  }
  const known = walListings.get(store.dir);
  if (known && known.mtimeNs === st.mtimeNs && !known.racy) return known.list;
  const names = await readdir(store.dir);
  const present = new Set(names);
  const indexed = names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
  const entries = new Map<string, WalEntry>();
  const unseen: string[] = [];
  for (const name of indexed) {
    // A history entry may gain its record later (history-record.ts, for files archived before it was recorded): read
    // again at every listing (a handful of small files).
    const e = name.endsWith('.history') ? undefined : known?.entries.get(name);
    if (e) entries.set(name, e);
    else unseen.push(name);
  }
  for (let i = 0; i < unseen.length; i += BATCH) {
    const read = await Promise.all(unseen.slice(i, i + BATCH).map((n) => store.entry(n)));
    for (const e of read) if (e) entries.set(e.name, e);
  }
  const list = [...entries.values()].filter((e) => present.has(e.file)).sort(byName);
  // One readdir is not a snapshot of a large directory: retention (entry, then file) or the archiver (file, then
  // entry) may have moved on while it ran. A file seen missing is lost only if, asked again, its entry is still
  // there and it is not.
  const lost: string[] = [];
  const setAside: string[] = [];
  for (const e of [...entries.values()].filter((x) => !present.has(x.file))) {
    const [file, entry, aside] = await Promise.all([
      exists(join(store.dir, e.file)),
      exists(join(store.dir, `${e.name}.json`)),
      exists(join(store.dir, `${e.file}${QUARANTINE}`)),
    ]);
    if (!file && entry) (aside ? setAside : lost).push(e.name);
  }
  lost.sort();
  setAside.sort();
  const racy = Date.now() - Number(st.mtimeNs / 1_000_000n) < RACY_MS;
  walListings.set(store.dir, { mtimeNs: st.mtimeNs, racy, entries, list, lost, setAside });
  return list;
}

/**
 * WAL files the index says were archived whose stored file is gone: damage, never retention (which deletes the
 * entry first, the file after) nor the archiver (which writes the file first, the entry after). As of the last
 * archivedWal listing of that store.
 */
export function lostWal(store: LocalWalStore): string[] {
  return walListings.get(store.dir)?.lost ?? [];
}

/** WAL files the checksum scrub found damaged and moved aside (still indexed), as of the last archivedWal listing. */
export function setAsideWal(store: LocalWalStore): string[] {
  return walListings.get(store.dir)?.setAside ?? [];
}

/**
 * The damage a target's archive holds, read from the file system alone: WAL indexed with its file gone, WAL and base
 * backups the checksum scrub set aside. What health's `damaged` and the scrub's "already damaged" both name.
 */
export async function archiveDamage(root: string, target: string): Promise<{ lost: string[]; setAside: { wal: string[]; bases: string[] } }> {
  const store = new LocalWalStore(root, target);
  const [, bases] = await Promise.all([archivedWal(store), setAsideBases(root, target)]);
  return { lost: lostWal(store), setAside: { wal: setAsideWal(store), bases } };
}

/** Base backups whose record the checksum scrub moved aside (`base.json.damaged`): damaged, no longer chosen. */
export async function setAsideBases(root: string, target: string): Promise<string[]> {
  const dir = join(root, target, '_base');
  const ids = await readdirIfExists(dir);
  const aside = await Promise.all(ids.map((id) => exists(join(dir, id, `base.json${QUARANTINE}`))));
  return ids.filter((_, i) => aside[i]).sort();
}

/**
 * The base backups of a target, oldest (by end) first: those whose `base.json` exists (written last). A record is
 * parsed again only when its file changed (inode, size, mtime).
 */
export async function archivedBases(root: string, target: string): Promise<BaseBackup[]> {
  const dir = join(root, target, '_base');
  const found: BaseBackup[] = [];
  for (const id of await readdirIfExists(dir)) {
    const path = join(dir, id, 'base.json');
    // One stat per base backup (there are a handful): a record removed or replaced is never served from memory.
    const st = await stat(path, { bigint: true }).catch((err: unknown) => {
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return null;
      throw err;
    });
    if (!st) continue;
    const sig = `${st.ino}:${st.size}:${st.mtimeNs}`;
    let known = baseRecords.get(path);
    if (known?.sig !== sig) {
      known = { sig, record: BaseBackupSchema.parse(JSON.parse(await readFile(path, 'utf8'))) };
      baseRecords.set(path, known);
    }
    found.push(known.record);
  }
  return found.sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt));
}
