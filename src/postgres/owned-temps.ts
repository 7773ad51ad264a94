import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../logger.ts';
import { processAlive } from '../process-group.ts';

/**
 * Private temp directories that hold secrets while a process works: a decrypted, decompressed copy of a backup while a
 * restore or restore test reads it (`pgbb-restore-*`, restore/open-archive.ts), a database password in a libpq
 * passfile while a tool connects (`pgbb-pass-*`, connection.ts). A process that ends removes its own; one killed
 * outright (SIGKILL, the OOM killer, a power cut) cannot, and left them in the temp directory for good (QA: 540 MB of
 * a production database's plaintext after a `kill -9`; then a passfile with the password). Each directory names its
 * process (`owner`: pid and host); the next one to make such a directory removes those whose process is gone on this
 * host, and those without an owner older than a day.
 */
export const RESTORE_TEMP = { prefix: 'pgbb-restore-', what: 'a decrypted backup' } as const;
export const PASSFILE_TEMP = { prefix: 'pgbb-pass-', what: 'a password file' } as const;
type Kind = { prefix: string; what: string };
const OWNER = 'owner';
const DAY_MS = 24 * 3600_000;

/** Makes a private directory under `tempRoot` named for this process, after removing the orphans of killed ones. */
export async function makeOwnedTemp(tempRoot: string, kind: Kind, log?: Logger, o: { sweep?: boolean } = {}): Promise<string> {
  if (o.sweep !== false) {
    await sweepOrphanedTemps(tempRoot, log, Date.now(), kind).catch((err: unknown) =>
      log?.warn({ err, tempRoot }, `could not look for orphaned temp directories (${kind.what})`),
    );
  }
  // mkdtemp makes the directory 0700 and the file is 0600: what it holds must not be readable by others.
  const dir = await mkdtemp(join(tempRoot, kind.prefix));
  await writeFile(join(dir, OWNER), `${process.pid}\n${hostname()}\n`, { mode: 0o600 });
  return dir;
}

/** The restore's temp directory (restore/open-archive.ts). */
export const makeRestoreTemp = (tempRoot: string, log?: Logger) => makeOwnedTemp(tempRoot, RESTORE_TEMP, log);

/** Removes the temp directories of `kind` whose processes are gone (see above); returns what it removed. */
export async function sweepOrphanedTemps(tempRoot: string, log?: Logger, now = Date.now(), kind: Kind = RESTORE_TEMP): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(tempRoot).catch(() => [] as string[])) {
    if (!name.startsWith(kind.prefix)) continue;
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
    log?.warn({ dir, pid: pid || null }, `removed a temp directory (${kind.what}) its process left when killed`);
  }
  return removed;
}
