import { createReadStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { BotError } from '../../errors.ts';
import { openFileWriter } from '../../storage/file-writer.ts';
import { errnoCode, fsyncDir, readdirIfExists, storageError, writeFileAtomically } from '../../storage/fs-util.ts';
import type { ArtifactWriter } from '../../storage/index.ts';

/**
 * The WAL archive of one target in local storage: `<BACKUP_DIR>/<target>/_wal/<segment>.zst[.age]`, and beside
 * each file its index entry `<segment>.json` (sizes, sha256 as stored, when). The entry is written only once
 * the file is complete and on disk, so a segment counts as archived exactly when its entry exists.
 */
export const WalEntrySchema = z.object({
  /** The WAL file's own name: a 24-hex-digit segment, or `<timeline>.history`. */
  name: z.string().regex(/^([0-9A-F]{24}|[0-9A-F]{8}\.history)$/),
  file: z.string(),
  /** Bytes as stored (compressed, encrypted) and their sha256; the segment's own size. */
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  rawBytes: z.number().int().nonnegative(),
  compression: z.literal('zstd'),
  encryption: z.enum(['age', 'none']),
  /**
   * The time up to which the file holds every change the server made, at or before the moment it was archived
   * (segment-time.ts: a backlog archived in a minute reaches only as far as the server had written then). The name
   * is older than that meaning; entries written before it carry the time they were archived.
   */
  archivedAt: z.string().datetime(),
  /**
   * How `archivedAt` was found (segment-time.ts ReachSource); absent in entries written before it was recorded. A value
   * a later version wrote and this one does not know reads as `unknown` (its time a lower bound), not as unreadable.
   */
  reachedBy: z.enum(['archived', 'sampled', 'commit', 'segment before', 'unknown']).optional().catch('unknown'),
  /**
   * When it was archived: the server had passed the segment's end by then, so a base backup whose end it reaches is
   * consistent by then (window.ts). Absent in entries written before it was recorded (their `archivedAt` is that).
   */
  storedAt: z.string().datetime().optional(),
  /**
   * A history file's record (lane.ts parseHistory), read when it is archived: the timelines before its own, each with
   * the LSN where the server left it. Absent in segments, and in history entries archived before it was recorded.
   */
  forks: z.array(z.object({ timeline: z.number().int().positive(), switchLsn: z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/) })).optional(),
});
export type WalEntry = z.infer<typeof WalEntrySchema>;

/** An index entry (or its file) that is there and cannot be read, said with why: permission denied names the user. */
export function entryUnreadable(what: string, where: string, err: unknown): BotError {
  if (errnoCode(err) === 'EACCES') {
    const user = process.getuid?.() === undefined ? 'this user' : `user ${userInfo().username}`;
    return new BotError(
      'storage_failed',
      `${what} in ${where} may not be read by ${user} (permission denied): the user who runs the restore (or the recovering server, through restore_command) must be able to read BACKUP_DIR.`,
      { cause: err },
    );
  }
  const code = errnoCode(err);
  return new BotError('storage_failed', `The index entry of ${what} in ${where} is unreadable${code ? ` (${code})` : ' (not the JSON the bot writes)'}.`, {
    cause: err,
  });
}

export class LocalWalStore {
  readonly dir: string;

  constructor(
    root: string,
    readonly target: string,
  ) {
    this.dir = join(root, target, '_wal');
  }

  describe(): string {
    return `local:${this.dir}`;
  }

  fileName(name: string, encrypted: boolean): string {
    return `${name}.zst${encrypted ? '.age' : ''}`;
  }

  /** A writer for the segment's file: complete under its final name only after `commit()`. */
  async writer(name: string, encrypted: boolean): Promise<ArtifactWriter> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    const final = join(this.dir, this.fileName(name, encrypted));
    return openFileWriter(`${final}.partial`, final, (err, action) => storageError(err, this.describe(), `${action} WAL ${name}`));
  }

  /** The index entry, after the file: from here on the segment is archived. */
  async index(entry: WalEntry): Promise<void> {
    await writeFileAtomically(join(this.dir, `${entry.name}.json`), `${JSON.stringify(WalEntrySchema.parse(entry), null, 2)}\n`);
    await fsyncDir(this.dir);
  }

  async entry(name: string): Promise<WalEntry | null> {
    try {
      return WalEntrySchema.parse(JSON.parse(await readFile(join(this.dir, `${name}.json`), 'utf8')));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return null;
      throw entryUnreadable(`WAL ${name}`, this.describe(), err);
    }
  }

  /** Every archived WAL file, in name order (which is WAL order within a timeline). */
  async list(): Promise<WalEntry[]> {
    const names = (await readdirIfExists(this.dir)).filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
    const entries = await Promise.all(names.map((n) => this.entry(n)));
    return entries.filter((e): e is WalEntry => e !== null).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  open(entry: WalEntry): Readable {
    return createReadStream(join(this.dir, entry.file));
  }
}
