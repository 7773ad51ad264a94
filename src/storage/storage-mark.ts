import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { RedisConnection } from '../redis-client.ts';
import { errnoCode, storageError } from './fs-util.ts';
import type { Storage } from './types.ts';

/**
 * Which disk BACKUP_DIR is. A disk that is not mounted leaves an empty directory at its mount point (or none, which
 * backups would create): there the bot said "no backup yet", wrote the next backup onto the root filesystem, called
 * it good, resolved the stale page and judged the root filesystem's free space (QA). As pgBackRest will not back up
 * into a repository without its info files, the bot writes a mark into the storage it first uses (a random id) and
 * keeps the id in Redis; a BACKUP_DIR whose mark is gone, or another one's, is not written to, and it pages.
 * Redis and the disk are each other's witness: with Redis emptied the mark is taken as it is; with both gone at once
 * (a new install, or a double loss) nothing can tell, and the directory is taken as new.
 */
export const MARK_FILE = '.pg-backup-bot-storage';
const markKey = (prefix: string, where: string) => `${prefix}:storage-mark:${where}`;

async function readMark(file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim() || null;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw storageError(err, dirname(file), 'read its storage mark');
  }
}

/** What is wrong with the local storage as the bot's storage (the sentence to fail and page with), or null. */
export async function storageMarkProblem(storage: Pick<Storage, 'root' | 'describe'>, redis: RedisConnection, prefix: string): Promise<string | null> {
  const root = storage.root;
  if (!root) return null;
  const file = join(root, MARK_FILE);
  const key = markKey(prefix, storage.describe());
  const [onDisk, known] = await Promise.all([readMark(file), redis.get(key)]);
  const fix = (id: string) => `if this directory is meant to be the bot's storage now, write ${id} into ${file}`;
  if (onDisk && known && onDisk !== known)
    return `BACKUP_DIR ${root} is another storage than the one the bot has written its backups to: its ${MARK_FILE} holds ${onDisk}, where the bot's is ${known} (another disk mounted there?). Nothing is written there until it is the right one; ${fix(known)}`;
  if (known && !onDisk)
    return `BACKUP_DIR ${root} is not the storage the bot has written its backups to: its ${MARK_FILE} is gone, so most likely the disk or share that holds them is not mounted (\`findmnt ${root}\`). Nothing is written there until it is back; ${fix(known)}`;
  if (onDisk) {
    if (!known) await redis.set(key, onDisk, 'NX');
    return null;
  }
  // First use (or an install from before the mark): this directory is the bot's storage from now on. A directory
  // that cannot be written (read-only, not ours) is said as such (QA: "Something unexpected went wrong" on EROFS).
  await mkdir(root, { recursive: true }).catch((err: unknown) => {
    throw storageError(err, root, 'create the backup directory');
  });
  const id = await writeFile(file, `${randomUUID()}\n`, { flag: 'wx', mode: 0o640 }).then(
    () => readMark(file),
    async (err: unknown) => {
      if (errnoCode(err) !== 'EEXIST') throw storageError(err, root, 'write');
      return readMark(file); // another worker marked it first
    },
  );
  if (id) await redis.set(key, id, 'NX');
  return null;
}
