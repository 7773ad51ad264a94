import { open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BACKUP_DISK_FULL, BotError } from '../errors.ts';

/** Small filesystem helpers for LocalStorage: durability (fsync) and errors people can act on. */

/** Makes renames and new entries in `dir` durable: without it a power cut can lose a "written" manifest. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/** Entries of a directory, or none when it does not exist (yet) or is a stray file. */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
}

/** statfs of the nearest existing ancestor, so free space is known before the backup root is created. */
export async function statfsNearest(path: string): Promise<{ totalBytes: number; freeBytes: number }> {
  let p = path;
  for (;;) {
    try {
      const s = await statfs(p);
      // bavail, not bfree: blocks reserved for root are not ours to fill.
      return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
    } catch (err) {
      const parent = dirname(p);
      if (errnoCode(err) !== 'ENOENT' || parent === p) throw err;
      p = parent;
    }
  }
}

/** A filesystem failure as a sentence: a full disk and missing permissions are the ones people can fix. */
export function storageError(err: unknown, where: string, action: string): BotError {
  if (err instanceof BotError) return err;
  const code = errnoCode(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BotError('disk_full', `${BACKUP_DISK_FULL} (${where}); free space or delete old backups, then run the backup again.`, {
      cause: err,
    });
  }
  // A filesystem mounted read-only (often the kernel's answer to disk errors) is not a matter of owners (QA).
  if (code === 'EROFS') {
    return new BotError(
      'storage_failed',
      `The bot may not ${action} in ${where} (EROFS): its filesystem is mounted read-only, often after disk errors; check \`findmnt\` and the kernel log (\`dmesg\`) on that host.`,
      { cause: err },
    );
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new BotError('storage_failed', `The bot may not ${action} in ${where} (${code}); check the backup directory's owner and permissions.`, {
      cause: err,
    });
  }
  return new BotError('storage_failed', `Could not ${action} in ${where}${code ? ` (${code})` : ''}.`, { cause: err });
}

/** Newest mtime of a directory and its entries; null when the directory is gone (deleted since it was listed). */
export async function newestMtime(dir: string): Promise<Date | null> {
  const own = await stat(dir).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  });
  if (!own) return null;
  let newest = own.mtime.getTime();
  for (const f of await readdirIfExists(dir)) {
    const s = await stat(join(dir, f)).catch(() => null); // renamed or removed meanwhile
    if (s) newest = Math.max(newest, s.mtime.getTime());
  }
  return new Date(newest);
}

/**
 * Writes `text` to `file` so that a power cut leaves the old state or the whole file, never a part: written under a
 * temporary name, fsynced, renamed, and the directory fsynced. The temporary file is removed when anything fails.
 */
export async function writeFileAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    const fh = await open(tmp, 'w', 0o640);
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    await fsyncDir(dirname(file));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** A backup's directory: `<target>-YYYYMMDDTHHMMSSZ`, maybe `-2` (manifest.ts BackupIdSchema). */
const BACKUP_DIR_NAME = /-\d{8}T\d{6}Z(-\d+)?$/;

/**
 * Why a BACKUP_DIR holds no backup, when that is not "none taken yet" to be trusted: it does not exist (a wrong one
 * set, a new host), it is empty (a disk or share not mounted there: the mount point is an empty directory), or it is
 * one target's directory (backups right under it). The sentence for people, or null. `_audit` and dot files alone
 * count as empty: the bot writes those before any backup.
 */

export async function backupDirProblem(root: string): Promise<string | null> {
  const read = await readdir(root).then(
    (entries) => ({ entries }),
    (err: unknown) => ({ code: errnoCode(err) ?? 'error' }),
  );
  const elsewhere = 'If the backups are elsewhere, set BACKUP_DIR to that directory.';
  if ('code' in read && read.code === 'ENOENT') return `BACKUP_DIR ${root} does not exist: no backup was ever written there. ${elsewhere}`;
  if ('code' in read) return `BACKUP_DIR ${root} cannot be read (${read.code}): check that it is a directory this user may read.`;
  const { entries } = read;
  // Backups right under it (`<target>-<stamp>/manifest.json`): one target's directory given for the root (QA: "No
  // finished backups yet", with the backups one level up from where the CLI looked).
  for (const e of entries.filter((x) => BACKUP_DIR_NAME.test(x)).slice(0, 20)) {
    if (
      await stat(join(root, e, 'manifest.json')).then(
        () => true,
        () => false,
      )
    )
      return `BACKUP_DIR ${root} holds backups itself (${e}): it is one target's directory, not the directory of all targets; set BACKUP_DIR to ${dirname(root)}.`;
  }
  if (entries.some((e) => !e.startsWith('.') && e !== '_audit')) return null;
  return `BACKUP_DIR ${root} is empty: no backup was ever written there, or the disk or share that holds them is not mounted (\`findmnt ${root}\`). ${elsewhere}`;
}
