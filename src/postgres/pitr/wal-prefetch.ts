import { spawn } from 'node:child_process';
import { mkdir, open, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { AgeIdentity } from '../../crypto/age.ts';
import { processAlive } from '../../process-group.ts';
import { errnoCode, exists } from '../../storage/fs-util.ts';
import { fetchWal } from './pitr-restore.ts';
import { SEGMENT_NAME } from './lsn.ts';
import type { LocalWalStore } from './wal-store.ts';
import { segmentPosition } from './window.ts';

/**
 * WAL read ahead of recovery. PostgreSQL runs restore_command once per segment and waits for it; a node process
 * that loads the bot, reads, checks, decrypts and decompresses a segment costs far more than replaying it, so a
 * restore spent most of its time starting processes (measured: 5× pgBackRest's restore on the bench). The first
 * wal-fetch that misses starts one detached prefetcher per data directory: it fetches the next segments with
 * the same checks into `pg_wal/.pgbb-prefetch/` (each complete under its name only after its sha256 and size
 * were checked), keeps `depth` of them ready, and leaves when recovery ends, the server stops, or recovery stops
 * asking. bin/pg-backup-bot.js serves a ready segment by renaming it, before loading anything else. Only whole segments are read ahead, never
 * timeline history files (those are asked for once and may not exist).
 */
export const PREFETCH_DIR = '.pgbb-prefetch';

/** Where the segments for a restore_command destination (`pg_wal/RECOVERYXLOG`) are read ahead. */
export const prefetchDirFor = (dest: string) => join(dirname(resolve(dest)), PREFETCH_DIR);

/** How many segments are kept ready: PGBB_WAL_PREFETCH (default 8; 0 turns read-ahead off). */
export function prefetchDepth(env: NodeJS.ProcessEnv): number {
  const n = Number(env.PGBB_WAL_PREFETCH ?? 8);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, 64) : 8;
}

const hex8 = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
export function nextSegment(name: string, k = 1): string {
  const { timeline, n } = segmentPosition(name);
  const m = n + k;
  return `${hex8(timeline)}${hex8(Math.floor(m / 0x100))}${hex8(m % 0x100)}`;
}

/** Takes the directory's lock (a file naming our pid); a lock whose process is gone is taken over. */
async function lock(dir: string): Promise<boolean> {
  const file = join(dir, '.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const h = await open(file, 'wx', 0o600);
      await h.writeFile(String(process.pid));
      await h.close();
      return true;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const pid = Number(await readFile(file, 'utf8').catch(() => ''));
      if (pid > 0 && processAlive(pid)) return false;
      await unlink(file).catch(() => undefined);
    }
  }
  return false;
}

/** Starts the prefetcher for this destination unless one runs already (or read-ahead is off). */
export async function startPrefetch(o: {
  bin: string;
  target: string;
  name: string;
  dest: string;
  env: NodeJS.ProcessEnv;
  reader?: string | undefined;
}): Promise<void> {
  if (!SEGMENT_NAME.test(o.name) || prefetchDepth(o.env) === 0) return;
  const dir = prefetchDirFor(o.dest);
  const pid = Number(await readFile(join(dir, '.lock'), 'utf8').catch(() => ''));
  if (pid > 0 && processAlive(pid)) return;
  const args = [o.bin, 'wal-prefetch', o.target, o.name, dir, ...(o.reader ? [`--reader=${o.reader}`] : [])];
  const child = spawn(process.execPath, args, { detached: true, stdio: 'ignore', env: o.env });
  // A spawn that fails (EAGAIN at the user's process limit, EMFILE) is reported as an 'error' event on a later tick:
  // without a listener it would kill wal-fetch, which then answers "not archived" for a segment that is (review).
  // No read-ahead is the only loss: wal-fetch fetches each segment itself.
  child.on('error', () => undefined);
  child.unref();
}

export interface PrefetchOptions {
  store: LocalWalStore;
  identity: AgeIdentity | undefined;
  dir: string;
  /** The segment recovery just took: read-ahead starts after it. */
  after: string;
  depth: number;
  /** Fetches at once (default 2: one core decompresses while the other replays). */
  concurrency?: number;
  /** How long recovery may take nothing before the prefetcher leaves (default 60 s). */
  idleMs?: number;
  pollMs?: number;
  /** Called about once a minute while reading: restore-pitr's hold on the base backup and its WAL is renewed. */
  renew?: () => Promise<unknown>;
  /** True once recovery cannot ask for more (recoveryEnded): the prefetcher leaves at once, not after `idleMs`. */
  recoveryOver?: () => Promise<boolean>;
}

/**
 * Whether the recovery in `dataDir` is over: the server stopped (no postmaster.pid; a server started again in
 * recovery starts a new prefetcher on its first miss) or recovery ended (PostgreSQL removes recovery.signal and
 * standby.signal once it has chosen its new timeline, after its last restore_command). A prefetcher that stayed on
 * would write into a directory the operator may be removing, for a server that reads no more.
 */
export async function recoveryEnded(dataDir: string): Promise<boolean> {
  if (!(await exists(join(dataDir, 'postmaster.pid')))) return true;
  return !(await exists(join(dataDir, 'recovery.signal'))) && !(await exists(join(dataDir, 'standby.signal')));
}

/** The data directory a prefetch directory (`<data>/pg_wal/.pgbb-prefetch`) belongs to. */
export const dataDirOfPrefetch = (dir: string) => dirname(dirname(resolve(dir)));

/**
 * The prefetcher's loop: keeps up to `depth` segments after the newest taken ready, stops at the end of the
 * archive or at a segment that fails its checks it waits and looks again (restore_command fetches that one
 * itself and reports the failure to PostgreSQL); once recovery is over, or has taken nothing for `idleMs`, it
 * removes its directory and leaves.
 */
export async function runPrefetch(o: PrefetchOptions): Promise<{ fetched: number }> {
  if (await o.recoveryOver?.()) return { fetched: 0 };
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  if (!(await lock(o.dir))) return { fetched: 0 };
  const pollMs = o.pollMs ?? 100;
  const idleMs = o.idleMs ?? 60_000;
  let fetched = 0;
  let next = nextSegment(o.after);
  let lastTaken = o.after;
  let lastProgress = Date.now();
  // Segments we put here: one that has gone was taken by recovery (the fast path renames it away).
  const placed = new Set<string>();
  let renewed = 0;
  try {
    for (;;) {
      if (o.renew && Date.now() - renewed > 60_000) {
        renewed = Date.now();
        await o.renew().catch(() => undefined);
      }
      const ready = (await readdir(o.dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
      const here = new Set(ready);
      // A segment wal-fetch had to fetch itself (we were behind) is named in .last.
      const told = (await readFile(join(o.dir, '.last'), 'utf8').catch(() => '')).trim();
      const taken = [...[...placed].filter((n) => !here.has(n)), ...(SEGMENT_NAME.test(told) ? [told] : [])].sort().at(-1);
      for (const n of placed) if (!here.has(n)) placed.delete(n);
      if (taken && taken > lastTaken) {
        lastTaken = taken;
        lastProgress = Date.now();
      }
      if (next <= lastTaken) next = nextSegment(lastTaken);
      for (const stale of ready.filter((n) => n <= lastTaken)) {
        await rm(join(o.dir, stale), { force: true });
        placed.delete(stale);
      }
      if (Date.now() - lastProgress > idleMs || (await o.recoveryOver?.())) break;
      const room = o.depth - ready.filter((n) => n > lastTaken).length;
      if (room <= 0) {
        await new Promise((r) => setTimeout(r, pollMs));
        continue;
      }
      const batch = Array.from({ length: Math.min(room, o.concurrency ?? 2) }, (_, k) => nextSegment(next, k));
      const got = await Promise.all(
        batch.map((name) => (here.has(name) ? Promise.resolve(true) : fetchWal(o.store, name, join(o.dir, name), o.identity).catch(() => false))),
      );
      for (const [k, name] of batch.entries()) {
        if (!got[k] || here.has(name)) continue;
        placed.add(name);
        // Idle means nothing to do and nothing taken: a slow fetch is not recovery gone quiet.
        lastProgress = Date.now();
      }
      const done = got.findIndex((ok) => !ok);
      fetched += done === -1 ? got.length : done;
      next = nextSegment(next, done === -1 ? batch.length : done);
      // The end of the archive (or a segment that failed its checks, which wal-fetch will report): look again later,
      // the archive may still grow while recovery runs.
      if (done !== -1) await new Promise((r) => setTimeout(r, pollMs * 10));
    }
  } finally {
    // Recovery has stopped asking: what is left would only fill pg_wal.
    await rm(o.dir, { recursive: true, force: true });
  }
  return { fetched };
}

/** Tells a running prefetcher which segment recovery took through wal-fetch itself (it was behind). */
export async function notePrefetchTaken(dest: string, name: string): Promise<void> {
  if (!SEGMENT_NAME.test(name)) return;
  await writeFile(join(prefetchDirFor(dest), '.last'), name).catch(() => undefined);
}
