import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { openFileWriter } from '../../storage/file-writer.ts';
import { errnoCode, fsyncDir, readdirIfExists, storageError, writeFileAtomically } from '../../storage/fs-util.ts';
import type { ArtifactWriter } from '../../storage/index.ts';
import { SEGMENT_NAME, segmentPosition } from './lsn.ts';
import { archivedWal } from './wal-index.ts';
import { entryUnreadable, LocalWalStore, type WalEntry, WalEntrySchema } from './wal-store.ts';

/**
 * Snapshots of the segment pg_receivewal is still writing, in `<BACKUP_DIR>/<target>/_wal/_partial/`: at most one
 * per segment, `<segment>.json` naming its file `<segment>.<bytes of WAL, hex>.zst[.age]`. A newer snapshot is a
 * new file; the index entry switches to it, then the older file is removed, so a reader never sees an entry whose
 * file is being replaced. The completed segment, once archived, supersedes the snapshot (it is removed).
 */
export const PartialEntrySchema = WalEntrySchema.extend({
  name: z.string().regex(SEGMENT_NAME),
  /** A name of its own directory only (an entry read from the bucket names the file written beside it). */
  file: z.string().regex(/^[0-9A-F]{24}\.[0-9A-F]+\.zst(\.age)?$/),
  partial: z.literal(true),
  /** Bytes of WAL it holds from the segment's start (the rest, to 16 MB, is zeros, as pg_receivewal pads it). */
  walBytes: z.number().int().positive(),
  /** The position it reaches, and when the server reported the receiver had flushed that far. */
  walEnd: z.string(),
  coversAt: z.string().datetime(),
});
export type PartialEntry = z.infer<typeof PartialEntrySchema>;

export class PartialWalStore {
  readonly dir: string;

  constructor(
    root: string,
    readonly target: string,
  ) {
    this.dir = join(root, target, '_wal', '_partial');
  }

  describe(): string {
    return `local:${this.dir}`;
  }

  fileName(name: string, walBytes: number, encrypted: boolean): string {
    return `${name}.${walBytes.toString(16).toUpperCase()}.zst${encrypted ? '.age' : ''}`;
  }

  async writer(file: string): Promise<ArtifactWriter> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    const final = join(this.dir, file);
    return openFileWriter(`${final}.tmp`, final, (err, action) => storageError(err, this.describe(), `${action} partial WAL ${file}`));
  }

  /**
   * The new snapshot's entry replaces the old one; then older files go. The one just replaced stays until the next
   * snapshot: a wal-fetch that read the old entry a moment ago still finds its file.
   */
  async index(entry: PartialEntry): Promise<void> {
    const old = await this.entry(entry.name);
    await writeFileAtomically(join(this.dir, `${entry.name}.json`), `${JSON.stringify(PartialEntrySchema.parse(entry), null, 2)}\n`);
    await fsyncDir(this.dir);
    await this.removeFiles(entry.name, [entry.file, old?.file]);
  }

  private async removeFiles(name: string, keep: Array<string | undefined>): Promise<void> {
    const files = (await readdirIfExists(this.dir)).filter((f) => f.startsWith(`${name}.`) && !f.endsWith('.json') && !f.endsWith('.tmp'));
    await Promise.all(files.filter((f) => !keep.includes(f)).map((f) => rm(join(this.dir, f), { force: true })));
  }

  async entry(name: string): Promise<PartialEntry | null> {
    try {
      return PartialEntrySchema.parse(JSON.parse(await readFile(join(this.dir, `${name}.json`), 'utf8')));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw entryUnreadable(`the partial WAL snapshot ${name}`, this.describe(), err);
    }
  }

  async list(): Promise<PartialEntry[]> {
    const names = (await readdirIfExists(this.dir)).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
    const entries = await Promise.all(names.map((n) => this.entry(n)));
    return entries.filter((e): e is PartialEntry => e !== null).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The completed segment is archived: its snapshot is no longer needed (entry first, then the file). */
  async remove(name: string): Promise<void> {
    await rm(join(this.dir, `${name}.json`), { force: true });
    await fsyncDir(this.dir);
    await this.removeFiles(name, []);
  }

  /**
   * Snapshots superseded by the whole segment `newest` (archived): its own, and those before it on its timeline whose
   * segment is archived whole too (`archivedWhole`). Not one before a gap: a dropped or invalidated slot leaves the
   * segments after a snapshot missing for good, and that snapshot is then the only copy of its WAL (QA: removed once
   * a segment after the gap was archived, and the window before the gap shrank to one second). Not an older
   * timeline's: its snapshot is that timeline's last WAL before the switch, which its base backups still need (QA:
   * names compared as text across timelines removed it).
   */
  async removeSupersededBy(newest: string, archivedWhole: (name: string) => Promise<boolean>): Promise<void> {
    const at = segmentPosition(newest);
    for (const p of await this.list()) {
      const was = segmentPosition(p.name);
      if (was.timeline !== at.timeline || was.n > at.n) continue;
      if (p.name === newest || (await archivedWhole(p.name))) await this.remove(p.name);
    }
  }

  open(entry: WalEntry): Readable {
    return createReadStream(join(this.dir, entry.file));
  }
}

/**
 * Every WAL file a recovery can fetch: the archived ones (the cached index, wal-index.ts), and for a segment not archived whole, its newest partial
 * snapshot, whose `archivedAt` is the time its WAL reaches (for the recoverable window).
 */
export async function recoverableWal(root: string, target: string): Promise<WalEntry[]> {
  const [full, partial] = await Promise.all([archivedWal(new LocalWalStore(root, target)), new PartialWalStore(root, target).list()]);
  return withPartials(full, partial);
}

/**
 * Whole segments (their entries, or what the window reads of them: s3-archive.ts remoteWindowWal), and the partial
 * snapshot of each segment not archived whole, as of the time its WAL reaches; in name order.
 */
export function withPartials<T extends { name: string }>(full: T[], partial: PartialEntry[]): (T | (WalEntry & { partial: true }))[] {
  const have = new Set(full.map((e) => e.name));
  // Its coversAt is how far it reaches; the time it was taken (its own archivedAt), when it was stored.
  const extra = partial
    .filter((p) => !have.has(p.name))
    .map((p) => ({ ...WalEntrySchema.parse(p), archivedAt: p.coversAt, storedAt: p.archivedAt, walEnd: p.walEnd, partial: true as const }));
  return [...full, ...extra].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
