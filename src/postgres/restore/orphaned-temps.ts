import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../logger.ts';
import { processAlive } from '../../process-group.ts';

/**
 * The private temp directories that hold a decrypted, decompressed copy of a backup while a restore or restore test
 * reads it (`pgbb-restore-*`, open-archive.ts). A process that ends removes its own; one killed outright (SIGKILL, the
 * OOM killer, a power cut) cannot, and left the plaintext of a production database in the temp directory for good
 * (QA: 540 MB after a `kill -9`). Each directory names its process (`owner`: pid and host); the next one to make such
 * a directory removes those whose process is gone on this host, and those without an owner older than a day.
 */
const PREFIX = 'pgbb-restore-';
const OWNER = 'owner';
const DAY_MS = 24 * 3600_000;

/** Makes a private directory under `tempRoot` named for this process, after removing the orphans of killed ones. */
export async function makeRestoreTemp(tempRoot: string, log?: Logger): Promise<string> {
  await sweepOrphanedTemps(tempRoot, log).catch((err: unknown) => log?.warn({ err, tempRoot }, 'could not look for orphaned restore temp directories'));
  // mkdtemp makes the directory 0700 and the file is 0600: a database's contents must not be readable by others.
  const dir = await mkdtemp(join(tempRoot, PREFIX));
  await writeFile(join(dir, OWNER), `${process.pid}\n${hostname()}\n`, { mode: 0o600 });
  return dir;
}

/** Removes the restore temp directories of processes that are gone (see above); returns what it removed. */
export async function sweepOrphanedTemps(tempRoot: string, log?: Logger, now = Date.now()): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(tempRoot).catch(() => [] as string[])) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = join(tempRoot, name);
    const [owner, info] = await Promise.all([readFile(join(dir, OWNER), 'utf8').catch(() => null), stat(dir).catch(() => null)]);
    if (!info?.isDirectory()) continue;
    const [pid, host] = (owner ?? '').split('\n');
    // No owner, or one cut short (killed while writing it): orphaned once a day old, as nothing else can tell.
    const named = Number(pid) > 0 && Boolean(host);
    const orphaned = named ? host === hostname() && !processAlive(Number(pid)) : now - info.mtimeMs > DAY_MS;
    if (!orphaned) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
    log?.warn({ dir, pid: pid || null }, 'removed a restore temp directory (a decrypted backup) its process left when killed');
  }
  return removed;
}
