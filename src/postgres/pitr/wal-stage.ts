import { copyFile, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AgeIdentity } from '../../crypto/age.ts';
import { fetchWal } from './pitr-restore.ts';
import { nextSegment, PREFETCH_DIR } from './wal-prefetch.ts';
import type { LocalWalStore } from './wal-store.ts';

/**
 * The first segments recovery asks for, fetched by restore-pitr while it unpacks the base backup and put where the
 * restore_command's fast path takes them (`pg_wal/.pgbb-prefetch/`). Without them, recovery's first asks each
 * started Node (wal-fetch, then the prefetcher it starts): about a second on 2 cores before the read-ahead caught up,
 * most of the bench's gap to pgBackRest's recovery. Whole segments only, each checked as wal-fetch checks it; they
 * become the server user's with the `chown -R` restore-pitr tells the user to run.
 */
export async function stageFirstSegments(o: {
  store: LocalWalStore;
  first: string;
  count: number;
  identity: AgeIdentity | undefined;
  /** The data directory to be: the staging directory sits beside it (same file system: moved in by rename). */
  dataDir: string;
}): Promise<{ placeInto: (dataDir: string) => Promise<number>; discard: () => Promise<void> }> {
  const stage = await mkdtemp(join(dirname(o.dataDir), '.pgbb-wal-stage-')).catch(() => mkdtemp(join(tmpdir(), 'pgbb-wal-stage-')));
  const fetched: string[] = [];
  const work = (async () => {
    let name = o.first;
    for (let i = 0; i < o.count; i++, name = nextSegment(name)) {
      // The end of what is archived whole (or a file that fails its checks: wal-fetch then says why, in the server's log).
      if (!(await fetchWal(o.store, name, join(stage, name), o.identity).catch(() => false))) break;
      fetched.push(name);
    }
  })();
  const discard = async () => {
    await work;
    await rm(stage, { recursive: true, force: true });
  };
  return {
    discard,
    async placeInto(dataDir) {
      await work;
      const into = join(dataDir, 'pg_wal', PREFETCH_DIR);
      let placed = 0;
      try {
        await mkdir(into, { recursive: true, mode: 0o700 });
        for (const name of fetched) {
          // Across file systems (the tmpdir fallback) a rename fails: copied then (tmp name first, as the prefetcher does).
          const to = join(into, name);
          const moved = await rename(join(stage, name), to).then(
            () => true,
            () =>
              copyFile(join(stage, name), `${to}.pgbb`)
                .then(() => rename(`${to}.pgbb`, to))
                .then(
                  () => true,
                  () => false,
                ),
          );
          if (moved) placed++;
        }
      } finally {
        await discard();
      }
      return placed;
    },
  };
}
