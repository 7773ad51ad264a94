import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BotError, NoSuchBackupError } from '../errors.ts';
import { formatCount } from '../format.ts';
import { backupDirProblem, errnoCode } from './fs-util.ts';
import type { Manifest } from './manifest.ts';

/**
 * Parsed manifests, by where they live and a signature of the stored file (inode, size, mtime; on S3 size and
 * LastModified). A manifest is written once, last, under a temporary name renamed into place, and never changed
 * afterwards, so an equal signature means the same bytes: a listing re-reads and re-validates only what is new.
 * Before, `/backup list` read and parsed every manifest on every call (about 10 ms of CPU per call with 20 backups).
 * Cached manifests are frozen: they are handed to every caller, so none may change what the next one sees.
 */
export class ManifestCache {
  readonly #entries = new Map<string, { sig: string; manifest: Manifest }>();

  get(where: string, sig: string): Manifest | undefined {
    const hit = this.#entries.get(where);
    return hit?.sig === sig ? hit.manifest : undefined;
  }

  set(where: string, sig: string, manifest: Manifest): Manifest {
    const frozen = deepFreeze(manifest);
    this.#entries.set(where, { sig, manifest: frozen });
    return frozen;
  }

  /** After a listing of everything under `prefix`: forgets the entries it did not see (deleted backups). */
  keepOnly(prefix: string, seen: ReadonlySet<string>): void {
    dropUnseen(this.#entries, prefix, seen);
  }
}

/** Drops the entries under `prefix` whose directory a listing no longer saw. */
export function dropUnseen(entries: Map<string, unknown>, prefix: string, seen: ReadonlySet<string>): void {
  for (const where of entries.keys()) if (where.startsWith(prefix) && !seen.has(where)) entries.delete(where);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Finished backups whose artifacts were last found whole, by directory and a signature of that directory (inode,
 * mtime, ctime). A file added to, removed from or renamed in a directory moves its mtime, and every write and delete
 * of the bot does one of those: while the signature holds, the listing skips re-reading the artifacts' sizes, for at
 * most `recheckMs` (a file damaged in place by something else shows within that). A directory is remembered only
 * when its contents had been quiet (mtime) for `quietMs` before its check: file times come from a clock that moves
 * in ticks of a few milliseconds, so a change within the tick of a check could leave the time as it was.
 */
export class VerifiedBackups {
  readonly #entries = new Map<string, { sig: string; checkedAt: number; manifest: Manifest }>();

  constructor(
    readonly recheckMs = 10_000,
    readonly quietMs = 1_000,
  ) {}

  get(dir: string, st: DirStat, now: number): Manifest | undefined {
    const hit = this.#entries.get(dir);
    return hit && hit.sig === dirSig(st) && now - hit.checkedAt < this.recheckMs ? hit.manifest : undefined;
  }

  /** After a check that began at `checkedAt` (with `st` read before it) found the backup whole. */
  remember(dir: string, st: DirStat, checkedAt: number, manifest: Manifest): void {
    if (checkedAt - st.mtimeMs >= this.quietMs) this.#entries.set(dir, { sig: dirSig(st), checkedAt, manifest });
    else this.#entries.delete(dir);
  }

  forget(dir: string): void {
    this.#entries.delete(dir);
  }

  /** As ManifestCache.keepOnly. */
  keepOnly(prefix: string, seen: ReadonlySet<string>): void {
    dropUnseen(this.#entries, prefix, seen);
  }
}

type DirStat = { ino: number; mtimeMs: number; ctimeMs: number };
const dirSig = (st: DirStat) => `${st.ino}:${st.mtimeMs}:${st.ctimeMs}`;

/** Past its retention deadline: retention may delete it (strictly later than the deadline, as retention-plan.ts). */
export const pastDeadline = (m: Pick<Manifest, 'retainUntil'>, now = Date.now()): boolean => m.retainUntil !== null && Date.parse(m.retainUntil) < now;

const bytes = (n: number) => `${formatCount(n)} byte${n === 1 ? '' : 's'}`;

/**
 * What is wrong with the first artifact whose size is not the recorded one (`sizeOf`: its size in storage, null when
 * it is not there, `{ unreadable }` when it could not be asked), said as the listing reports it; undefined when all
 * are right.
 */
export function artifactProblem(m: Manifest, sizeOf: (file: string, i: number) => number | null | undefined | { unreadable: string }): string | undefined {
  for (const [i, a] of m.artifacts.entries()) {
    const size = sizeOf(a.file, i) ?? null;
    if (size === null) return `artifact ${a.file} is missing`;
    if (typeof size === 'object') return `artifact ${a.file} cannot be read (${size.unreadable})`;
    if (size !== a.bytes) return `artifact ${a.file} is ${bytes(size)} where its manifest records ${bytes(a.bytes)} (cut short or overwritten)`;
  }
  return undefined;
}

/**
 * What is wrong with the first artifact of a backup in `dir` that is missing, unreadable or not of its recorded size,
 * if any (artifactProblem). `strict` (what retention deletes by): only a file that is not there counts as missing; any
 * other error reading it (EIO, ESTALE on a network mount) is thrown, so nothing is deleted on a storage that cannot be
 * read.
 */
export async function wrongArtifact(dir: string, m: Manifest, o: { strict?: boolean } = {}): Promise<string | undefined> {
  // All at once: under a burst each sequential step waits its turn in a busy event loop.
  const sizes = await Promise.all(
    m.artifacts.map((a) =>
      stat(join(dir, a.file)).then(
        (s) => s.size,
        (err: unknown) => {
          const code = errnoCode(err);
          if (code === 'ENOENT' || code === 'ENOTDIR') return null;
          if (o.strict) throw err;
          return { unreadable: code ?? (err as Error).message };
        },
      ),
    ),
  );
  return artifactProblem(m, (_, i) => sizes[i]);
}

/**
 * A backup whose manifest is not there, said for what it is: no BACKUP_DIR at all (the wrong one set, at 3 a.m. on
 * a new host, must not read as "no such backup"), a directory with files but no manifest, or nothing of that id.
 */
export async function missingBackup(root: string, dir: string, target: string, backupId: string, cause: unknown): Promise<BotError> {
  const none = `There is no finished backup ${backupId} of ${target}`;
  const emptyRoot = await backupDirProblem(root);
  if (emptyRoot) return new BotError('backup_not_found', `${none}: ${emptyRoot}`, { cause });
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => !f.startsWith('.'));
  if (files.length > 0)
    return new BotError(
      'backup_not_found',
      `Backup ${backupId} of ${target} is not finished: ${dir} holds ${files.join(', ')} but no manifest.json (a backup still running, one that was interrupted, or its manifest lost). The bot restores only finished backups; README "Disaster recovery" says how to restore its files by hand.`,
      { cause },
    );
  return new NoSuchBackupError(target, backupId, { cause });
}
